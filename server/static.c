/*
 * static — the example pages the daemon serves (GET /examples/...), embedded into the
 * binary at build time (scripts/embed.py), so a client developer needs nothing but wshubd.
 */
#include <stdlib.h>
#include <string.h>

#include "wshub/http.h"
#include "wshub/metrics.h"

extern const char static__flow_html[];
extern const size_t static__flow_html_len;

static const struct page {
    const char *path;
    const char *data;
    const size_t *len;
} pages[] = {
    {"/examples/flow.html", static__flow_html, &static__flow_html_len},
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
            out->ctype = "text/html; charset=utf-8";
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
