#!/usr/bin/env node
'use strict';
// A traffic tap client for benchmarks (bench/run.sh BESIDE=...): connects to /api/tap of the
// wshubd on 127.0.0.1:$PORT with the API key $KEY and the filters given as one query string,
// counts what it receives, and prints the counts on SIGTERM (or when the server closes it).
//
//   PORT=8080 KEY=wshub-development-api-key node bench/tap-client.js 'api=echo'
//   BESIDE="exec node bench/tap-client.js 'api=echo'" bench/run.sh --targets wshub-B --scenarios S1
//
// With 'api=echo' (no echo client in the bench's scenarios, and publishes come from the
// server API) it matches nothing: the cost of a tap that listens for something else; with
// 'kind=publish' one event per publish; with '' every frame and publish.
const path = require('node:path');
const WebSocket = require(path.join(__dirname, '..', 'tests', 'e2e', 'node_modules', 'ws'));

const query = process.argv[2] || '';
const url = `ws://127.0.0.1:${process.env.PORT}/api/tap?${query}`;
const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${process.env.KEY}` }, perMessageDeflate: false });
const counts = { events: 0, bytes: 0, frames: 0, publishes: 0, dropped_notices: 0, dropped: 0 };
const t0 = Date.now();
ws.on('open', () => console.log(`tap open: ${url}`));
ws.on('message', (d) => {
  counts.events++;
  counts.bytes += d.length;
  const s = d.toString('utf8', 0, 64);
  if (s.includes('"kind":"frame"')) counts.frames++;
  else if (s.includes('"kind":"publish"')) counts.publishes++;
  else if (s.includes('"kind":"dropped"')) {
    counts.dropped_notices++;
    counts.dropped += JSON.parse(d.toString('utf8')).n;
  }
});
const report = (why) => {
  console.log(JSON.stringify({ why, seconds: (Date.now() - t0) / 1000, ...counts }));
  process.exit(0);
};
ws.on('close', (code) => report(`closed ${code}`));
ws.on('error', (e) => report(`error ${e.message}`));
process.on('SIGTERM', () => report('SIGTERM'));
