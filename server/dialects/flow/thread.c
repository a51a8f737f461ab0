/*
 * flow/thread — what reaches a Flow thread: its hub channel thread:<id> (the envelope that
 * turns a publish into Flow's message.received, or into the server type the publish names),
 * the bot replies published there, and the entries of its history (built here, kept by the
 * store). Bot replies and publishes to thread:<id> reach every socket of that thread through
 * the hub. Only the server message types the SDK knows are ever built.
 * Never: sends on a socket directly, or keeps any state of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "wshub/dialect.h"
#include "wshub/frame.h"
#include "wshub/hub.h"
#include "wshub/ws.h"

#include "internal.h"

#define THREAD_PREFIX "thread:"

int flow__channel(char *buf, size_t size, const char *thread)
{
    int n = snprintf(buf, size, THREAD_PREFIX "%s", thread);
    return n > 0 && (size_t)n < size ? n : -1;
}

static json_t *history_entry(const char *type, json_t *payload)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return json_pack("{s:s, s:O, s:I}", "type", type, "payload", payload,
                     "createdAt", (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

int flow__history_add(dialect_ctx_t *x, const char *thread, const char *type, json_t *payload)
{
    const config_t *cfg = &dialect_live(x)->cfg;
    if (cfg->flow_history_limit <= 0)
        return FLOW_STORE_OK;
    json_t *entry = history_entry(type, payload);
    flow_store_t *st = flow__store();
    int r = entry ? st->ops->history_add(st, thread, entry, cfg, dialect_metrics(x)) : FLOW_STORE_NOMEM;
    json_decref(entry);
    return r;
}

void flow__publish_reply(dialect_ctx_t *x, const char *thread, json_t *payload)
{
    flow__history_add(x, thread, "message.received", payload);
    char *text = json_dumps(payload, JSON_COMPACT);
    char ch[FLOW_MAX_ID + 16];
    int n = flow__channel(ch, sizeof ch, thread);
    size_t delivered;
    if (text && n > 0)
        dialect_publish(x, ch, (size_t)n, "message.received", text, strlen(text), &delivered);
    free(text);
}

/* ------------------------------------------------------------------ the hub envelope */

/* The server types of PROTOCOLS.md §D a publish may name, sent with its data as their
 * payload. pong and error are control replies the server API refuses; message.received is
 * the default below. No other type is ever sent: the SDK reports unknown types as errors. */
static const char *const published_types[] = {"message.delivered", "activities.delivered", "activities.created",
                                              "agent.typing", "secret.generated", "interruption.occurred"};

/* A publish to thread:<id>: a server type its event names, else Flow's message.received. */
static json_t *published_payload(const char *thread, const char *event, json_t *data, const char **type)
{
    for (size_t i = 0; event && i < sizeof published_types / sizeof published_types[0]; i++) {
        if (strcmp(event, published_types[i]) == 0) {
            *type = published_types[i];
            return json_incref(data);
        }
    }
    *type = "message.received";
    if (json_is_array(json_object_get(data, "messages"))) {
        json_t *p = json_deep_copy(data);
        json_object_set_new(p, "threadId", json_string(thread));
        if (!json_object_get(p, "originator"))
            json_object_set_new(p, "originator", flow__bot_originator());
        return p;
    }
    json_t *text = json_object_get(data, "text");
    return flow__reply_payload(thread, json_is_string(text) ? json_string_value(text) : "",
                               json_string_length(text), NULL, json_object_get(data, "quickReplies"));
}

/* pong and error, the control replies of §D: the server API refuses them, the mock backend
 * sends them on purpose (POST /api/flow/threads/<id>/events). NULL for the other events. */
static json_t *control_message(const char *event, json_t *data)
{
    if (strcmp(event, "pong") == 0)
        return json_pack("{s:s}", "type", "pong");
    if (strcmp(event, "error") != 0)
        return NULL;
    json_t *m = json_object_get(data, "message");
    return json_pack("{s:s, s:s%}", "type", "error", "message", json_is_string(m) ? json_string_value(m) : "error",
                     json_is_string(m) ? json_string_length(m) : strlen("error"));
}

static frame_t *build_frame(const hub_msg_t *m)
{
    const char *thread = m->channel + strlen(THREAD_PREFIX);
    json_t *data = json_loadb(m->data, m->data_len, DIALECT_JSON_FLAGS, NULL);
    const char *type;
    json_t *msg = data && m->event ? control_message(m->event, data) : NULL;
    json_t *payload = data && !msg ? published_payload(thread, m->event, data, &type) : NULL;
    if (payload)
        msg = json_pack("{s:s, s:o}", "type", type, "payload", payload);
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    frame_t *f = text ? frame_build(WS_OP_TEXT, text, strlen(text)) : NULL;
    free(text);
    json_decref(msg);
    json_decref(data);
    return f;
}

const hub_envelope_t flow__envelope = {.build = build_frame};

/* Publishes through the API to thread:<id> are kept in that thread's history too. */
void flow__on_publish(dialect_ctx_t *x, const char *channel, size_t len, const char *event, const char *data,
                      size_t dlen)
{
    size_t plen = strlen(THREAD_PREFIX);
    if (len <= plen || memcmp(channel, THREAD_PREFIX, plen) != 0 || len - plen > FLOW_MAX_ID ||
        (event && (strcmp(event, "error") == 0 || strcmp(event, "pong") == 0)))
        return; /* the control replies the mock backend sends are no thread message */
    char thread[FLOW_MAX_ID + 1];
    memcpy(thread, channel + plen, len - plen);
    thread[len - plen] = 0;
    json_t *d = json_loadb(data, dlen, DIALECT_JSON_FLAGS, NULL);
    const char *type;
    json_t *payload = d ? published_payload(thread, event, d, &type) : NULL;
    if (payload && strcmp(type, "message.received") == 0)
        flow__history_add(x, thread, type, payload);
    json_decref(payload);
    json_decref(d);
}
