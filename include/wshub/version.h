/* The daemon's version: `wshubd -V`, the startup banner, GET /api/info (keep it in step with
 * meson.build's project version). */
#ifndef WSHUB_VERSION_H
#define WSHUB_VERSION_H

#define WSHUB_VERSION "0.1.0"

#endif
