'use strict';
// Autobahn|Testsuite-equivalent conformance run of wshubd's /echo endpoint: the fuzzingclient
// cases 1.* - 7.*, 9.*, 10.* and the permessage-deflate cases 12.* and 13.* (see
// autobahn/README.md), against a wshubd with websocket.compression on. One test per case; a
// case fails the test only when its verdict is FAILED (OK, NON-STRICT, INFORMATIONAL and
// UNIMPLEMENTED pass), except 12.* and 13.*, which must be OK: the server under test is
// configured to negotiate the extension (not with WSHUB_AUTOBAHN_URL: another server may not).
//   AUTOBAHN_CASES          case patterns, comma separated, e.g. "6.4.*" or "1.1.1,9.*" (default all)
//   AUTOBAHN_EXCLUDE_CASES  patterns to leave out
//   AUTOBAHN_CONCURRENCY    connections at a time for the quick cases (default 4; 9.* run one by one)
//   AUTOBAHN_REPORT         write every case result as JSON to this file
//   AUTOBAHN_MAX_WAIT       cap in seconds for a case's own long waits (default 20)
//   AUTOBAHN_DEFLATE_COUNT  messages per 12.*/13.* case (default 20; upstream sends 1000)
//   WSHUB_AUTOBAHN_URL      run against this already-running server (full ws:// URL) instead of
//                           starting wshubd, e.g. a reference server when validating the harness
const { test, after } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');

const { cases: rfc6455Cases, selectCases } = require('./autobahn/cases');
const { deflateCases, runDeflateCase } = require('./autobahn/deflate');
const { runCases, summarize, formatResult, VERDICTS, FAILED } = require('./autobahn/fuzzingclient');

const cases = [...rfc6455Cases, ...deflateCases];
const selected = selectCases(cases, process.env.AUTOBAHN_CASES, process.env.AUTOBAHN_EXCLUDE_CASES);
const isDeflate = (c) => c.id.startsWith('12.') || c.id.startsWith('13.');
const concurrency = Math.max(1, Number(process.env.AUTOBAHN_CONCURRENCY || 4));

let server = null;
let running = null;
const waiters = new Map(); // id -> { promise, resolve }
for (const c of selected) {
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  waiters.set(c.id, { promise, resolve });
}

async function startServer() {
  if (process.env.WSHUB_AUTOBAHN_URL) return process.env.WSHUB_AUTOBAHN_URL;
  const lib = require('./lib/server');
  if (!fs.existsSync(lib.BIN)) throw new Error(`wshubd binary not found at ${lib.BIN} (build it or set WSHUB_BIN / WSHUB_AUTOBAHN_URL)`);
  // An echo of a 16 MiB message queues 16 MiB for the client: the output bound must allow it,
  // or the server rightly closes with 1013 (slow consumer) after the echo.
  server = await lib.start({ env: {
    WSHUB_LIMITS_MAX_MESSAGE_BYTES: String(17 * 1024 * 1024),
    WSHUB_LIMITS_MAX_QUEUED_BYTES: String(40 * 1024 * 1024),
    WSHUB_WEBSOCKET_COMPRESSION: 'true', // 12.*/13.*; the other cases offer no extension
  } });
  return `${server.wsUrl}/echo`;
}

// Runs everything once, in the background: the quick cases with limited concurrency, then the
// 9.* limits/performance cases one at a time (they move up to 16 MiB each and measure time).
function runAll() {
  if (running) return running;
  running = (async () => {
    let url;
    try {
      url = await startServer();
    } catch (err) {
      for (const w of waiters.values()) w.resolve({ error: err });
      throw err;
    }
    const onResult = (r) => waiters.get(r.id).resolve(r);
    const quick = selected.filter((c) => !c.id.startsWith('9.') && !isDeflate(c));
    const heavy = selected.filter((c) => c.id.startsWith('9.'));
    const results = [];
    results.push(...await runCases(quick, url, { concurrency, onResult }));
    results.push(...await runCases(heavy, url, { concurrency: 1, onResult }));
    // 12.*/13.*: one at a time (each compresses megabytes on both sides).
    for (const c of selected.filter(isDeflate)) {
      const r = await runDeflateCase(c, url);
      onResult(r);
      results.push(r);
    }
    return results;
  })();
  running.catch(() => {});
  return running;
}

function testName(c) {
  let d = c.description.replace(/<br><br>Payload: /, ' Payload ').replace(/<br>.*$/s, '').replace(/<\/?b>/g, '');
  if (d.length > 160) d = `${d.slice(0, 157)}...`;
  return `autobahn ${c.id}: ${d}`;
}

for (const c of selected) {
  test(testName(c), async (t) => {
    runAll();
    const r = await waiters.get(c.id).promise;
    if (r.error) throw r.error;
    t.diagnostic(`${r.verdict} (close: ${r.behaviorClose}, remote close code ${r.remoteCloseCode}, ${r.duration} ms)`);
    assert.notStrictEqual(r.verdict, FAILED, formatResult(r));
    if (isDeflate(c) && !process.env.WSHUB_AUTOBAHN_URL) assert.strictEqual(r.verdict, 'OK', formatResult(r));
  });
}

after(async () => {
  let results = null;
  let runError = null;
  if (running) {
    try { results = await running; } catch (err) { runError = err; }
  }
  try {
    if (results) {
      const counts = summarize(results);
      const line = `autobahn summary: ${results.length} cases — ` + VERDICTS.map((v) => `${v} ${counts[v] || 0}`).join(', ');
      console.log(line);
      const failed = results.filter((r) => r.verdict === FAILED).map((r) => r.id);
      if (failed.length) console.log(`autobahn FAILED cases: ${failed.join(' ')}`);
      if (process.env.AUTOBAHN_REPORT) fs.writeFileSync(process.env.AUTOBAHN_REPORT, JSON.stringify(results, null, 1));
    }
  } finally {
    if (server) await server.teardown();
  }
  if (runError) throw runError;
});
