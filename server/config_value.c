/*
 * config_value — the syntax of one configuration value, apart from the key table: integers,
 * word lists, comma-separated and JSON string lists, host:port, and the Redis URL of
 * broker.redis_url (config_redis_url_parse, public through config.h for the broker).
 *
 * Owns: parsing a value's text into plain C values. Never: knows keys, error wording of
 * config_load, prints or keeps state.
 *
 * See config.c, which applies these to the key table.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* strndup, strcasecmp */
#endif

#include "config_value.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- string lists ---------------------------------------------------------------- */

void config_list_free(config_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static int list_push(config_strlist_t *l, const char *s, size_t len)
{
    char **items = realloc(l->items, (l->n + 1) * sizeof *items);

    if (!items)
        return -ENOMEM;
    l->items = items;
    items[l->n] = strndup(s, len);
    if (!items[l->n])
        return -ENOMEM;
    l->n++;
    return 0;
}

/* "a, b,,c " -> [a, b, c]: items trimmed, empty ones dropped. */
int config_list_split(const char *s, config_strlist_t *out)
{
    *out = (config_strlist_t){0};
    while (*s) {
        const char *end = strchr(s, ',');
        const char *a = s, *b;

        if (!end)
            end = s + strlen(s);
        b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a && list_push(out, a, (size_t)(b - a)) < 0) {
            config_list_free(out);
            return -ENOMEM;
        }
        s = *end ? end + 1 : end;
    }
    return 0;
}

int config_list_json(const json_t *arr, config_strlist_t *out)
{
    size_t i;
    const json_t *item;

    *out = (config_strlist_t){0};
    if (!json_is_array(arr))
        return -EINVAL;
    json_array_foreach(arr, i, item) {
        int rc;

        if (!json_is_string(item) || json_string_length(item) == 0) {
            config_list_free(out);
            return -EINVAL;
        }
        rc = list_push(out, json_string_value(item), json_string_length(item));
        if (rc < 0) {
            config_list_free(out);
            return rc;
        }
    }
    return 0;
}

/* ---- scalars --------------------------------------------------------------------- */

/* Digits only: no sign, no space, no base prefix. */
int config_parse_ull(const char *s, unsigned long long *v)
{
    char *end;

    if (!isdigit((unsigned char)s[0]))
        return -EINVAL;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return errno || *end ? -EINVAL : 0;
}

/* An optional '-' then digits. */
int config_parse_ll(const char *s, long long *v)
{
    char *end;

    if (!isdigit((unsigned char)s[s[0] == '-']))
        return -EINVAL;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return errno || *end ? -EINVAL : 0;
}

/* Index of s in a NULL-terminated word list, ignoring case; -1 if absent. */
int config_word_index(const char *const *words, const char *s)
{
    for (int i = 0; words[i]; i++)
        if (strcasecmp(words[i], s) == 0)
            return i;
    return -1;
}

/* The bracketed part of "[addr%zone]:port" must be an IPv6 address. */
static bool is_ipv6(const char *h, size_t len)
{
    char buf[64];
    struct in6_addr addr;
    const char *zone = memchr(h, '%', len);

    if (zone)
        len = (size_t)(zone - h);
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, h, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, &addr) == 1;
}

/* An IPv4 address or a host name: letters, digits, '.', '-', '_'. */
static bool is_host(const char *h, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)h[i]) && !strchr(".-_", h[i]))
            return false;
    return len > 0;
}

/* "host:port" or "[v6]:port"; the host is stored without brackets. */
int config_parse_listen(const char *s, char **host, int *port)
{
    const char *h = s, *colon;
    size_t hlen;
    unsigned long long p;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (!close || close[1] != ':' || !is_ipv6(s + 1, (size_t)(close - s - 1)))
            return -EINVAL;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || !is_host(s, (size_t)(colon - s)))
            return -EINVAL;
        hlen = (size_t)(colon - s);
    }
    if (config_parse_ull(colon + 1, &p) < 0 || p < 1 || p > 65535)
        return -EINVAL;
    *host = strndup(h, hlen);
    if (!*host)
        return -ENOMEM;
    *port = (int)p;
    return 0;
}

/* ---- broker.redis_url ------------------------------------------------------------ */

static int url_fail(char *err, size_t errlen, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", why);
    return -EINVAL;
}

static int hex_digit(char c)
{
    return isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10;
}

/* s[0, len) with %XX decoded into out (NUL-terminated); false if it does not fit, an
 * escape is malformed or decodes to NUL. */
static bool unescape(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (c == '%') {
            if (len - i < 3 || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return false;
            c = (char)(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
            if (c == '\0')
                return false;
            i += 2;
        }
        if (n + 1 >= cap)
            return false;
        out[n++] = c;
    }
    out[n] = '\0';
    return true;
}

/* "user:password@" (the last '@' ends it, so a password may hold one); *p moves past it. */
static int parse_userinfo(const char **p, config_redis_url_t *u, char *err, size_t errlen)
{
    const char *at = strrchr(*p, '@'), *colon;

    if (!at)
        return 0;
    colon = memchr(*p, ':', (size_t)(at - *p));
    if (!colon)
        return url_fail(err, errlen, "a password is missing: redis://[user]:password@host:port");
    if (!unescape(*p, (size_t)(colon - *p), u->user, sizeof u->user))
        return url_fail(err, errlen, "the user is too long or has a bad %-escape");
    if (!unescape(colon + 1, (size_t)(at - colon - 1), u->password, sizeof u->password))
        return url_fail(err, errlen, "the password is too long or has a bad %-escape");
    if (!u->password[0])
        return url_fail(err, errlen, "the password is empty (leave out the '@' part for none)");
    *p = at + 1;
    return 0;
}

/* "host:port" or "[v6]:port"; *p moves past it. */
static int parse_hostport(const char **p, config_redis_url_t *u, char *err, size_t errlen)
{
    const char *h = *p, *s;
    size_t hlen, plen;
    char digits[8];
    unsigned long long port;

    if (*h == '[') {
        const char *close = strchr(h, ']');

        if (!close || !is_ipv6(h + 1, (size_t)(close - h - 1)))
            return url_fail(err, errlen, "the host is not an IPv6 address in brackets");
        hlen = (size_t)(close - h - 1);
        h++;
        s = close + 1;
    } else {
        hlen = strcspn(h, ":/");
        if (hlen == 0)
            return url_fail(err, errlen, "the host is missing");
        if (!is_host(h, hlen))
            return url_fail(err, errlen, "the host may hold letters, digits, '.', '-', '_'");
        s = h + hlen;
    }
    if (hlen >= sizeof u->host)
        return url_fail(err, errlen, "the host is too long");
    memcpy(u->host, h, hlen);
    u->host[hlen] = '\0';
    if (*s != ':')
        return url_fail(err, errlen, "the port is missing: redis://host:port");
    s++;
    plen = strcspn(s, "/");
    if (plen == 0 || plen >= sizeof digits)
        return url_fail(err, errlen, "the port must be from 1 to 65535");
    memcpy(digits, s, plen);
    digits[plen] = '\0';
    if (config_parse_ull(digits, &port) < 0 || port < 1 || port > 65535)
        return url_fail(err, errlen, "the port must be from 1 to 65535");
    u->port = (int)port;
    *p = s + plen;
    return 0;
}

int config_redis_url_parse(const char *url, config_redis_url_t *out, char *err, size_t errlen)
{
    config_redis_url_t u;
    const char *p;
    unsigned long long db = 0;

    memset(&u, 0, sizeof u);
    if (err && errlen)
        err[0] = '\0';
    if (!url || !*url)
        return url_fail(err, errlen, "it is empty");
    if (strncasecmp(url, "rediss://", 9) == 0)
        return url_fail(err, errlen, "rediss:// (TLS) is not supported");
    if (strncasecmp(url, "redis://", 8) != 0)
        return url_fail(err, errlen, "it must start with redis://");
    for (p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return url_fail(err, errlen, "a space or control character (escape it as %XX)");
    p = url + 8;
    if (parse_userinfo(&p, &u, err, errlen) < 0 || parse_hostport(&p, &u, err, errlen) < 0)
        return -EINVAL;
    if (*p == '/' && p[1] && (config_parse_ull(p + 1, &db) < 0 || db > 15))
        return url_fail(err, errlen, "the database must be a number from 0 to 15");
    u.db = (int)db;
    if (out)
        *out = u;
    return 0;
}

const char *config_env_value(char *const *envp, const char *name)
{
    size_t len = strlen(name);

    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, len) == 0 && (*envp)[len] == '=')
            return *envp + len + 1;
    return NULL;
}

char *config_masked_url(const char *s)
{
    const char *start = strstr(s, "://"), *at = strrchr(s, '@');
    if (!start)
        return NULL;
    if (!at || at < start)
        return strdup(s);
    start += 3;
    const char *keep = memchr(start, ':', (size_t)(at - start));
    keep = keep ? keep + 1 : start;
    size_t n = (size_t)(keep - s) + 3 + strlen(at) + 1;
    char *m = malloc(n);
    if (m)
        snprintf(m, n, "%.*s***%s", (int)(keep - s), s, at);
    return m;
}
