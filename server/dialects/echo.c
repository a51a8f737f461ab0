/*
 * echo — the RFC 6455 test endpoint at /echo: every text or binary message goes back
 * unchanged, with the same opcode (PROTOCOLS.md "Echo"). No auth; echo.enabled turns it off.
 */
#include "wshub/dialect.h"
#include "wshub/metrics.h"
#include "wshub/ws.h"

static int enabled(const config_t *cfg) { return cfg->echo_enabled; }

static void on_message(ws_session_t *s, int opcode, const uint8_t *msg, size_t len)
{
    ws_session_send(s, opcode, msg, len);
}

const dialect_t dialect_echo = {
    .name = "echo",
    .path = "/echo",
    .endpoint = EP_ECHO,
    .enabled = enabled,
    .on_message = on_message,
};
