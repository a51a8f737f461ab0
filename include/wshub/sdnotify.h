/*
 * sdnotify — tells systemd (Type=notify, config/wshubd.service) where the daemon is in its
 * life: ready once listening, reloading around SIGHUP, stopping on drain. No-ops when wshubd
 * was built without libsystemd or runs without NOTIFY_SOCKET (a terminal, a container).
 */
#ifndef WSHUB_SDNOTIFY_H
#define WSHUB_SDNOTIFY_H

/* READY=1, with STATUS=<status> when status is not NULL. */
void sdnotify_ready(const char *status);
/* RELOADING=1: a SIGHUP reload has begun; sdnotify_ready() ends it. */
void sdnotify_reloading(void);
/* STOPPING=1: draining the connections before exiting. */
void sdnotify_stopping(void);

#endif
