// uWebSockets pub/sub peer for wsbench: the behaviour of ../shared/bench/peers/node-ws/server.js
// on uWS's own topic pub/sub (ws->subscribe, app.publish), built by bench/build-uws.sh against a
// snapshot of uWebSockets + uSockets kept outside the repository.
//
// WS /ws: {"type":"subscribe","data":{"channel":"X"}} -> {"type":"subscribed","data":{"channel":"X"}}
//         {"type":"unsubscribe","data":{"channel":"X"}}
//         {"type":"publish","data":{"channel":"X","event":"notification","data":{...}}} -> fan-out
// POST /api/publish {"channel":"X","event":"notification","data":{...}}
//   -> every subscriber of X gets {"type":"notification","channel":"X","data":<data verbatim>}
//   -> 200 {"ok":true,"delivered":N} (N = app.numSubscribers(X)), 400 {"ok":false} on a bad body
//
//   uws-peer PORT                          listens on 127.0.0.1:PORT
//   UWS_COMPRESSION=shared uws-peer PORT   permessage-deflate with uWS::SHARED_COMPRESSOR
//                                          (needs the zlib build, uws-peer-z)
//
// JSON is handled by string scanning, enough for a peer: the "channel" string (no escapes) and
// the raw "data" value (bracket matching that skips strings), passed on byte for byte.
#include "App.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

struct PerSocketData {};

// index just past the value that starts at s[i] (object, array, string or scalar); npos if cut
size_t value_end(std::string_view s, size_t i) {
    if (i >= s.size()) return std::string_view::npos;
    char c = s[i];
    if (c == '"') {
        for (size_t j = i + 1; j < s.size(); j++) {
            if (s[j] == '\\') j++;
            else if (s[j] == '"') return j + 1;
        }
        return std::string_view::npos;
    }
    if (c == '{' || c == '[') {
        int depth = 0;
        for (size_t j = i; j < s.size(); j++) {
            char d = s[j];
            if (d == '"') {
                size_t e = value_end(s, j);
                if (e == std::string_view::npos) return e;
                j = e - 1;
            } else if (d == '{' || d == '[') {
                depth++;
            } else if (d == '}' || d == ']') {
                if (--depth == 0) return j + 1;
            }
        }
        return std::string_view::npos;
    }
    size_t j = i;
    while (j < s.size() && s[j] != ',' && s[j] != '}' && s[j] != ']' && s[j] != ' ' && s[j] != '\n') j++;
    return j > i ? j : std::string_view::npos;
}

// the raw value of the top-level member "key" of the object s; empty when absent
std::string_view member(std::string_view s, std::string_view key) {
    size_t i = 0;
    while (i < s.size() && s[i] != '{') i++;
    if (i == s.size()) return {};
    i++;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r' || s[i] == ',')) i++;
        if (i >= s.size() || s[i] != '"') return {};
        size_t ke = value_end(s, i);
        if (ke == std::string_view::npos) return {};
        std::string_view k = s.substr(i + 1, ke - i - 2);
        i = ke;
        while (i < s.size() && (s[i] == ' ' || s[i] == ':')) i++;
        size_t ve = value_end(s, i);
        if (ve == std::string_view::npos) return {};
        if (k == key) return s.substr(i, ve - i);
        i = ve;
    }
    return {};
}

// a string member's content (quotes removed); false when absent or not a plain string
bool string_member(std::string_view s, std::string_view key, std::string_view &out) {
    std::string_view v = member(s, key);
    if (v.size() < 2 || v.front() != '"' || v.find('\\') != std::string_view::npos) return false;
    out = v.substr(1, v.size() - 2);
    return true;
}

bool compressed = false;
uWS::App *app = nullptr;

// {"channel":"X","event":"notification","data":{...}} -> fan-out; subscribers, or -1 on a bad body
long publish(std::string_view body) {
    std::string_view ch, data = member(body, "data"), event;
    if (!string_member(body, "channel", ch) || data.empty()) return -1;
    if (!string_member(body, "event", event)) event = "notification";
    std::string msg;
    msg.reserve(data.size() + ch.size() + event.size() + 40);
    msg.append("{\"type\":\"").append(event).append("\",\"channel\":\"").append(ch).append("\",\"data\":");
    msg.append(data).append("}");
    unsigned int n = app->numSubscribers(ch);
    if (n) app->publish(ch, msg, uWS::OpCode::TEXT, compressed);
    return n;
}

} // namespace

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    const char *comp = getenv("UWS_COMPRESSION");
    compressed = comp && !strcmp(comp, "shared");
#ifdef UWS_NO_ZLIB
    if (compressed) {
        fprintf(stderr, "uws-peer: UWS_COMPRESSION=shared needs the zlib build (uws-peer-z)\n");
        return 2;
    }
#endif
    uWS::App a;
    app = &a;
    a.ws<PerSocketData>("/ws", {
        .compression = compressed ? uWS::SHARED_COMPRESSOR : uWS::DISABLED,
        .maxPayloadLength = 1024 * 1024,
        .idleTimeout = 0, // none: wsbench answers pings but sends none
        // as examples/EchoServer.cpp: large enough that S1 (16 publishes in flight to 1000
        // subscribers) never drops a message
        .maxBackpressure = 100 * 1024 * 1024,
        .closeOnBackpressureLimit = false,
        .resetIdleTimeoutOnSend = false,
        .sendPingsAutomatically = false,
        .message = [](auto *ws, std::string_view m, uWS::OpCode) {
            std::string_view type, ch, data = member(m, "data");
            if (!string_member(m, "type", type) || data.empty()) return;
            if (type == "publish") {
                publish(data);
                return;
            }
            if (!string_member(data, "channel", ch)) return;
            if (type == "subscribe") {
                ws->subscribe(ch);
                std::string ack = "{\"type\":\"subscribed\",\"data\":{\"channel\":\"";
                ack.append(ch).append("\"}}");
                ws->send(ack, uWS::OpCode::TEXT);
            } else if (type == "unsubscribe") {
                ws->unsubscribe(ch);
            }
        },
    }).post("/api/publish", [](auto *res, auto *) {
        auto body = std::make_shared<std::string>();
        res->onAborted([] {});
        res->onData([res, body](std::string_view chunk, bool last) {
            body->append(chunk);
            if (!last) return;
            long n = publish(*body);
            res->cork([res, n] {
                if (n < 0) {
                    res->writeStatus("400 Bad Request")->writeHeader("Content-Type", "application/json")->end("{\"ok\":false}");
                } else {
                    std::string r = "{\"ok\":true,\"delivered\":" + std::to_string(n) + "}";
                    res->writeHeader("Content-Type", "application/json")->end(r);
                }
            });
        });
    }).any("/*", [](auto *res, auto *) {
        res->writeStatus("404 Not Found")->end();
    }).listen("127.0.0.1", port, [port](auto *ls) {
        if (ls) fprintf(stderr, "uws-peer listening on 127.0.0.1:%d (compression %s)\n", port, compressed ? "shared" : "disabled");
        else fprintf(stderr, "uws-peer: cannot listen on 127.0.0.1:%d\n", port);
    }).run();
    return 1;
}
