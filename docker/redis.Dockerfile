# Redis from Debian 12 for docker/compose.yml (no registry image needed: the same base as wshub).
ARG BASE=debian:12-slim
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/*
USER redis
# In-memory only: the broker keeps no state in Redis that must survive a restart.
CMD ["redis-server", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"]
