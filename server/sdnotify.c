/*
 * sdnotify — the sd_notify(3) messages of the daemon's life (include/wshub/sdnotify.h).
 * With libsystemd (meson option systemd, on when libsystemd-dev is installed) they go to
 * NOTIFY_SOCKET; sd_notify() does nothing when it is not set. Without libsystemd they are
 * no-ops, so the container image needs no systemd library.
 */
#include "wshub/sdnotify.h"

#include <stdio.h>

#ifdef WSHUB_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#define NOTIFY(msg) ((void)sd_notify(0, (msg)))
#else
#define NOTIFY(msg) ((void)(msg))
#endif

void sdnotify_ready(const char *status)
{
    char msg[512];
    if (status)
        snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
    else
        snprintf(msg, sizeof msg, "READY=1");
    NOTIFY(msg);
}

void sdnotify_reloading(void)
{
    NOTIFY("RELOADING=1\nSTATUS=reloading the configuration");
}

void sdnotify_stopping(void)
{
    NOTIFY("STOPPING=1\nSTATUS=draining: closing every connection with 1001");
}
