/*
 * static — the pages the daemon serves, embedded into the binary at build time
 * (scripts/embed.py), so a client developer needs nothing but wshubd: the example pages
 * (GET /examples/...) and the web console (GET /console, issue 16: web/console/).
 *
 * The console's files hold no data (every datum comes from an endpoint behind the API key)
 * and are served with a strict Content-Security-Policy: scripts, styles and connections of
 * the page's own origin only, no inline script, no framing.
 */
#include <stdlib.h>
#include <string.h>

#include "wshub/http.h"
#include "wshub/metrics.h"

extern const char static__flow_html[];
extern const size_t static__flow_html_len;
extern const char static__console_html[];
extern const size_t static__console_html_len;
extern const char static__console_js[];
extern const size_t static__console_js_len;
extern const char static__console_css[];
extern const size_t static__console_css_len;

#define HTML "text/html; charset=utf-8"
#define CONSOLE_HEADERS                                                                         \
    "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; "       \
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "           \
    "form-action 'none'; frame-ancestors 'none'\r\n"                                           \
    "X-Content-Type-Options: nosniff\r\n"                                                      \
    "X-Frame-Options: DENY\r\n"                                                                \
    "Referrer-Policy: no-referrer\r\n"

static const struct page {
    const char *path;
    const char *data;
    const size_t *len;
    const char *ctype;
    const char *extra;
} pages[] = {
    {"/examples/flow.html", static__flow_html, &static__flow_html_len, HTML, NULL},
    {"/console", static__console_html, &static__console_html_len, HTML, CONSOLE_HEADERS},
    {"/console/", static__console_html, &static__console_html_len, HTML, CONSOLE_HEADERS},
    {"/console/index.html", static__console_html, &static__console_html_len, HTML, CONSOLE_HEADERS},
    {"/console/console.js", static__console_js, &static__console_js_len,
     "text/javascript; charset=utf-8", CONSOLE_HEADERS},
    {"/console/console.css", static__console_css, &static__console_css_len,
     "text/css; charset=utf-8", CONSOLE_HEADERS},
};

void static_page(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    (void)x;
    size_t plen;
    const char *path = http_request_path(req, &plen);
    const char *m = http_request_method(req);
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        out->status = 405;
        out->extra = "Allow: GET, HEAD\r\n";
        out->body = strdup("{\"error\":\"method_not_allowed\",\"message\":\"use GET\"}");
        out->len = out->body ? strlen(out->body) : 0;
        out->hs_reason = 1 + HS_METHOD;
        return;
    }
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        if (strlen(pages[i].path) == plen && memcmp(pages[i].path, path, plen) == 0) {
            out->status = 200;
            out->ctype = pages[i].ctype;
            out->extra = pages[i].extra;
            out->body = malloc(*pages[i].len);
            if (out->body)
                memcpy(out->body, pages[i].data, *pages[i].len);
            out->len = out->body ? *pages[i].len : 0;
            return;
        }
    }
    out->status = 404;
    out->body = strdup("{\"error\":\"not_found\",\"message\":\"no such page\"}");
    out->len = out->body ? strlen(out->body) : 0;
}
