/*
 * fuzz_config — the configuration loader as wshubd runs it: config_load on a JSON file
 * (every key, type and range check, unknown keys, nested objects), with WSHUB_* variables
 * over it, then the JWT verifier built from the result (auth.algorithms and the secret) when
 * it uses an HMAC secret. The file is a memfd, reached by its /proc/self/fd path.
 *
 * Input: the file's bytes, optionally followed by a NUL byte and environment lines
 * ("WSHUB_NAME=value", separated by '\n').
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wshub/auth.h"
#include "wshub/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ENV 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t file_len = nul ? (size_t)(nul - data) : size;
    int fd = memfd_create("fuzz-config", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write(fd, data, file_len) != (ssize_t)file_len) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

    /* The environment: a NUL-terminated copy of the trailer, cut into lines. */
    char *envbuf = NULL;
    char *envp[MAX_ENV + 1] = {0};
    if (nul) {
        size_t n = size - file_len - 1;
        envbuf = malloc(n + 1);
        if (!envbuf) {
            close(fd);
            return 0;
        }
        memcpy(envbuf, nul + 1, n);
        envbuf[n] = 0;
        size_t k = 0;
        for (char *save = NULL, *line = strtok_r(envbuf, "\n", &save); line && k < MAX_ENV;
             line = strtok_r(NULL, "\n", &save))
            envp[k++] = line;
    }

    config_t cfg;
    char err[512];
    if (config_load(&cfg, path, envp, err, sizeof err) == 0) {
        /* A key file could be anything (a FIFO, a terminal): only the HMAC path is built. */
        if (!cfg.auth_public_key) {
            auth_verifier_t *v = auth_verifier_new(&cfg, "fuzz-dev-secret", err, sizeof err);
            auth_verifier_free(v);
        }
        config_free(&cfg);
    } else if (!memchr(err, 0, sizeof err) || !err[0]) {
        abort(); /* a failure must say why, in one NUL-terminated line */
    }
    free(envbuf);
    close(fd);
    return 0;
}
