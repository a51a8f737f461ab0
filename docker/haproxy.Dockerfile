# HAProxy from Debian 12 for docker/compose.yml: the load balancer in front of the wshub nodes.
# Its configuration is mounted (docker/haproxy.cfg).
ARG BASE=debian:12-slim
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/*
USER haproxy
# SIGUSR1: soft stop (no new connections, established ones until hard-stop-after).
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
