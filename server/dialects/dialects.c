/*
 * The routing table of WebSocket endpoints: one entry per dialect module.
 */
#include "wshub/dialect.h"

const dialect_t *const dialects[] = {
    &dialect_echo,
    &dialect_service,
    &dialect_cable,
    &dialect_moderation,
    &dialect_flow,
    NULL,
};
