'use strict';
// Lifecycle of wshubd: signals (SIGTERM/SIGINT drain with close 1001 and exit 0, SIGHUP reload),
// the slow-consumer bound, the WebSocket limits (1009, 1007, 1002), the close handshake and its
// timeout, and the command line (config errors, --check-config, the development banner, `token`).
// Every test starts its own wshubd (lib/server.js) and every wait is bounded.
//   WSHUB_BIN   the binary under test (scripts/test passes the sanitizer build)
const { test } = require('node:test');
const { sleep, waitFor } = require('./lib/util');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const WebSocket = require('ws');

const { BIN, start, freePort, SANITIZER } = require('./lib/server');

// ------------------------------------------------------------------ small helpers


// Resolves what `promise` resolves, or rejects after `ms` naming `what`.
function within(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// Polls an (async) predicate until it returns a truthy value; bounded.

// One sample of /metrics, e.g. metric(inst, 'wshub_connections_open{endpoint="echo"}').
async function metric(inst, name) {
  const r = await inst.get('/metrics', { timeout: 3000 });
  if (r.status !== 200) return NaN;
  for (const line of r.body.split('\n')) {
    if (line.startsWith(`${name} `)) return Number(line.slice(name.length + 1));
  }
  return NaN;
}

function rssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch { return NaN; }
}

// Sends `sig` and waits (at most boundMs) for the exit. Resolves {code, signal, ms, inTime};
// a daemon still running at the bound is killed with SIGKILL.
async function signalAndWait(inst, sig, boundMs) {
  const t0 = Date.now();
  inst.child.kill(sig);
  let timer;
  const late = new Promise((r) => { timer = setTimeout(() => r(null), boundMs); });
  const info = await Promise.race([inst.exited, late]);
  clearTimeout(timer);
  if (!info) {
    inst.child.kill('SIGKILL');
    const killed = await inst.exited;
    return { ...killed, ms: Date.now() - t0, inTime: false };
  }
  return { ...info, ms: Date.now() - t0, inTime: true };
}

function assertNoSanitizer(log, where) {
  const m = SANITIZER.exec(log);
  assert.ok(!m, m && `sanitizer report in ${where}:\n${log.slice(Math.max(0, m.index - 200), m.index + 3000)}`);
}

// Stops a daemon that a test left running (after a failed assertion).
async function cleanup(inst) {
  if (inst && inst.alive()) await inst.stop(5000);
}

// A `ws` client on `url`: resolves once open; ws.closed resolves {code, reason} on 'close'.
function openWs(url, { timeout = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`ws open timed out: ${url}`)); }, timeout);
    ws.closed = new Promise((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.on('error', (err) => { ws.lastError = err; clearTimeout(timer); reject(err); });
    ws.on('open', () => { clearTimeout(timer); resolve(ws); });
  });
}

// Sends one message and waits for the next one; resolves the round trip in ms.
function echoRtt(ws, text, timeout = 5000) {
  return within(new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    ws.once('message', (m) => {
      if (m.toString() !== text) reject(new Error(`echo answered ${JSON.stringify(m.toString().slice(0, 80))}`));
      else resolve(Number(process.hrtime.bigint() - t0) / 1e6);
    });
    ws.send(text);
  }), timeout, `echo of ${JSON.stringify(text)}`);
}

// Opens n clients, `batch` handshakes at a time.
async function openMany(url, n, batch = 100) {
  const all = [];
  for (let i = 0; i < n; i += batch) {
    const k = Math.min(batch, n - i);
    all.push(...await Promise.all(Array.from({ length: k }, () => openWs(url))));
  }
  return all;
}

const { OP, encodeFrame, closePayload, closeInfo, RawWs } = require('./lib/rawws');

// ------------------------------------------------------------------ SIGTERM / SIGINT

async function drainTest(sig, nClients) {
  const SHUTDOWN_MS = 3000;
  const MARGIN_MS = 2000;
  const inst = await start({ env: { WSHUB_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_MS) } });
  try {
    const clients = await openMany(`${inst.wsUrl}/echo`, nClients);
    assert.equal(clients.length, nClients);
    // Every connection is live before the signal.
    await Promise.all(clients.filter((_, i) => i % 50 === 0).map((ws, i) => echoRtt(ws, `before ${i}`)));
    assert.equal(await metric(inst, 'wshub_connections_open{endpoint="echo"}'), nClients);

    const r = await signalAndWait(inst, sig, SHUTDOWN_MS + MARGIN_MS);
    const closes = await within(Promise.all(clients.map((ws) => ws.closed)), 5000, 'every client to see its close');
    const byCode = {};
    for (const c of closes) byCode[c.code] = (byCode[c.code] || 0) + 1;
    const log = inst.log();

    assert.ok(r.inTime, `still running ${SHUTDOWN_MS + MARGIN_MS} ms after ${sig} (killed)`);
    assert.deepEqual({ code: r.code, signal: r.signal }, { code: 0, signal: null }, `exit after ${sig}\n${log.slice(-2000)}`);
    assert.deepEqual(byCode, { 1001: nClients }, 'close codes seen by the clients');
    assertNoSanitizer(log, inst.logFile);
    // Every client answered the close: the drain ends before the deadline.
    assert.ok(!/deadline passed/.test(log), `the drain waited for the deadline although every client answered:\n${log.slice(-1500)}`);
    return r.ms;
  } finally {
    await cleanup(inst);
  }
}

test('SIGTERM with 1,000 open /echo connections: close 1001 to every client, exit 0 in time, no sanitizer report', { timeout: 90000 }, async (t) => {
  const ms = await drainTest('SIGTERM', 1000);
  t.diagnostic(`exited ${ms} ms after SIGTERM`);
});

test('SIGINT behaves like SIGTERM (close 1001, exit 0)', { timeout: 60000 }, async (t) => {
  const ms = await drainTest('SIGINT', 100);
  t.diagnostic(`exited ${ms} ms after SIGINT`);
});

test('SIGTERM: a client that never answers the close frame does not keep the daemon past shutdown.timeout_ms', { timeout: 60000 }, async (t) => {
  const SHUTDOWN_MS = 1000;
  // The close-handshake timeout is far away: only the shutdown deadline can end this.
  const inst = await start({ env: { WSHUB_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_MS), WSHUB_WEBSOCKET_CLOSE_TIMEOUT_MS: '60000' } });
  try {
    const raw = await RawWs.connect(inst.port, { allowHalfOpen: true });
    const ws = await openWs(`${inst.wsUrl}/echo`);
    raw.send(OP.TEXT, 'hi');
    await raw.waitFrames(1);
    const t0 = Date.now();
    const exiting = signalAndWait(inst, 'SIGTERM', SHUTDOWN_MS + 2000);
    // While it drains, the daemon accepts nothing new.
    await raw.until(() => raw.closeFrame(), 2000, 'close 1001 to the silent client');
    await waitFor(async () => (await inst.get('/healthz', { timeout: 200 })).status === 0, 500, 'the listeners to close during the drain');
    assert.ok(Date.now() - t0 < SHUTDOWN_MS, 'checked during the drain');
    const r = await exiting;
    const log = inst.log();
    assert.ok(r.inTime, `still running ${SHUTDOWN_MS + 2000} ms after SIGTERM (killed)\n${log.slice(-2000)}`);
    assert.deepEqual({ code: r.code, signal: r.signal }, { code: 0, signal: null }, `exit after SIGTERM\n${log.slice(-2000)}`);
    t.diagnostic(`exited ${r.ms} ms after SIGTERM with a silent client`);
    assert.ok(r.ms >= SHUTDOWN_MS - 100, `exited after ${r.ms} ms, before the deadline, with a client that never answered`);
    const c = await raw.waitClose(2000);
    assert.equal(c.code, 1001, 'the silent client got close 1001');
    await raw.waitEnd(2000);
    assert.equal((await within(ws.closed, 2000, 'ws close')).code, 1001);
    assertNoSanitizer(log, inst.logFile);
    raw.destroy();
  } finally {
    await cleanup(inst);
  }
});

// ------------------------------------------------------------------ SIGHUP

test('SIGHUP reloads log.level without dropping connections; an invalid file keeps the old config', { timeout: 60000 }, async () => {
  // WSHUB_LOG_LEVEL would override the file (and the reload): leave it unset.
  const inst = await start({ config: { log: { level: 'warn' } }, env: { WSHUB_LOG_LEVEL: undefined } });
  const cfgFile = path.join(inst.dir, 'wshub.json');
  try {
    const ws = await openWs(`${inst.wsUrl}/echo`);
    await echoRtt(ws, 'before reload');
    const debugLine = /^\S+ debug /m;
    assert.ok(!debugLine.test(inst.log()), `debug lines at level warn:\n${inst.log()}`);
    assert.ok(!/^\S+ info /m.test(inst.log()), `info lines at level warn:\n${inst.log()}`);

    fs.writeFileSync(cfgFile, JSON.stringify({ log: { level: 'debug' } }));
    inst.child.kill('SIGHUP');
    const reloadAt = await waitFor(() => {
      const m = /^\S+ info reload .*$/m.exec(inst.log());
      return m && m.index + m[0].length;
    }, 15000, 'the reload log line');
    assert.ok(inst.alive(), 'daemon alive after SIGHUP');
    assert.equal(await metric(inst, 'wshub_connections_open{endpoint="echo"}'), 1, 'the connection survived the reload');
    await echoRtt(ws, 'after reload');
    // New activity now logs at debug level.
    const ws2 = await openWs(`${inst.wsUrl}/echo`);
    await echoRtt(ws2, 'new connection');
    await waitFor(() => debugLine.test(inst.log().slice(reloadAt)), 3000, 'a debug line after the reload');

    // An invalid file: rejected, the running config (debug) stays, nothing is dropped.
    for (const bad of ['{"log": {"level": "loud"}}', '{"log": {"level": "warn"}', '{"log": {"lvl": "warn"}}']) {
      fs.writeFileSync(cfgFile, bad);
      const before = inst.log().length;
      inst.child.kill('SIGHUP');
      const rejectAt = await waitFor(() => {
        const tail = inst.log().slice(before);
        const m = /^.*\breload\b.*$/m.exec(tail);
        return m && before + m.index + m[0].length;
      }, 5000, `the reload outcome for ${bad}`);
      const outcome = inst.log().slice(before, rejectAt);
      assert.match(outcome, /^\S+ error reload /m, `reload of ${bad} was not rejected:\n${inst.log().slice(before)}`);
      assert.ok(inst.alive(), `daemon died after SIGHUP with ${bad}`);
      await echoRtt(ws, `after rejected ${bad}`);
      const ws3 = await openWs(`${inst.wsUrl}/echo`);
      await echoRtt(ws3, 'new connection');
      ws3.close();
      await waitFor(() => debugLine.test(inst.log().slice(rejectAt)), 3000, `debug lines still logged after rejecting ${bad}`);
    }
    assert.equal((await inst.get('/healthz')).status, 200);
    ws.close();
    ws2.close();
    await inst.teardown();
  } finally {
    await cleanup(inst);
  }
});

// ------------------------------------------------------------------ slow consumer

// A raw /echo client that never reads sends messages; the server must close it as a slow
// consumer (1013 "slow consumer"), count it once, and keep answering another client promptly.
//   steady: 8 KiB every ~2 ms (a subscriber falling behind a steady stream: the kernel buffers
//           fill first, then the queue grows slowly while a write is pending)
//   burst:  16 KiB messages as fast as the socket takes them
async function slowConsumer(t, mode) {
  const QUEUE = 65536;
  const inst = await start({ env: {
    WSHUB_WORKERS: '1', // the slow client and the prompt one share a worker
    WSHUB_LIMITS_MAX_QUEUED_BYTES: String(QUEUE),
    WSHUB_WEBSOCKET_CLOSE_TIMEOUT_MS: '1000',
    WSHUB_SHUTDOWN_TIMEOUT_MS: '1000',
  } });
  let raw;
  let other;
  let pinging = true;
  try {
    other = await openWs(`${inst.wsUrl}/echo`);
    raw = await RawWs.connect(inst.port);
    const closes0 = await metric(inst, 'wshub_slow_consumer_closes_total');
    assert.equal(closes0, 0);
    const rss0 = rssKb(inst.pid);

    // The prompt client: one echo every 50 ms while the slow one sends.
    const rtts = [];
    let pingErr = null;
    const pinger = (async () => {
      for (let i = 0; pinging; i++) {
        try {
          rtts.push(await echoRtt(other, `ping ${i}`, 5000));
        } catch (err) {
          pingErr = err;
          return;
        }
        await sleep(50);
      }
    })();

    // The slow client never reads (paused: its kernel buffers fill) and sends until the server
    // counts a slow-consumer close, or the bound (bytes, time) is reached.
    raw.sock.pause();
    const steady = mode === 'steady';
    const size = steady ? 8192 : 16384;
    const msg = encodeFrame(OP.BINARY, Buffer.alloc(size, 0x61), { mask: Buffer.alloc(4) });
    const LIMIT = (steady ? 32 : 48) * 1024 * 1024;
    const floodEnd = Date.now() + (steady ? 8000 : 20000);
    let sent = 0;
    let counted = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching && !counted) {
        const v = await metric(inst, 'wshub_slow_consumer_closes_total');
        if (v > closes0) counted = v;
        else await sleep(50);
      }
    })();
    while (!counted && sent < LIMIT && Date.now() < floodEnd && !raw.sock.destroyed) {
      const ok = raw.sock.write(msg);
      sent += msg.length;
      if (!ok) {
        await within(new Promise((r) => {
          const done = () => { raw.sock.off('drain', done); clearInterval(poll); r(); };
          const poll = setInterval(() => { if (counted || raw.sock.destroyed || Date.now() > floodEnd) done(); }, 20);
          raw.sock.on('drain', done);
        }), 25000, 'socket drain');
      }
      if (steady) await sleep(2);
    }
    // A correct server counts the close within a few loop iterations of passing the bound.
    await waitFor(() => counted, 3000, 'wshub_slow_consumer_closes_total to move').catch(() => {});
    watching = false;
    await watcher;
    await sleep(200); // a second count of the same connection would show up by now
    const closes1 = await metric(inst, 'wshub_slow_consumer_closes_total');
    const rss1 = rssKb(inst.pid);
    t.diagnostic(`${mode}: sent ${(sent / 1048576).toFixed(1)} MiB without reading; ` +
      `wshub_slow_consumer_closes_total ${closes0} -> ${closes1}; server RSS ${rss0} -> ${rss1} kB; ` +
      `other client so far: ${rtts.length} echoes, max ${Math.max(0, ...rtts).toFixed(1)} ms${pingErr ? `, ${pingErr.message}` : ''}`);
    assert.ok(closes1 > closes0,
      `wshub_slow_consumer_closes_total did not move after ${(sent / 1048576).toFixed(1)} MiB were sent to /echo by a client ` +
      `that never reads (limits.max_queued_bytes ${QUEUE}); server RSS grew ${rss0} -> ${rss1} kB`);

    // The connection is closed by the server (close frame if it fits, then TCP) within the
    // close timeout, although the client still does not read.
    await waitFor(async () => (await metric(inst, 'wshub_connections_open{endpoint="echo"}')) === 1, 5000, 'the slow connection to be closed');
    pinging = false;
    await pinger;
    assert.ok(!pingErr, `the other client: ${pingErr && pingErr.message}`);
    const maxRtt = Math.max(...rtts);
    t.diagnostic(`${mode}: the other client got ${rtts.length} echoes meanwhile, max ${maxRtt.toFixed(1)} ms`);
    assert.ok(rtts.length >= 3, 'the other client got echoes during the flood');
    assert.ok(maxRtt < 500, `the other client's echo took ${maxRtt.toFixed(1)} ms during the flood`);

    // Now read what was sent: echoes, then at most one close, which is 1013 "slow consumer".
    raw.sock.resume();
    await raw.waitEnd(10000);
    const closeIdx = raw.frames.findIndex((f) => f.op === OP.CLOSE);
    t.diagnostic(`${mode}: the slow client read ${raw.frames.length} frames (${raw.bytes} bytes) after the close; close frame ${closeIdx >= 0 ? 'present' : 'absent'}`);
    if (closeIdx >= 0) {
      assert.equal(closeIdx, raw.frames.length - 1, 'the close is the last frame');
      assert.deepEqual(closeInfo(raw.frames[closeIdx]), { code: 1013, reason: 'slow consumer' });
    }
    for (const f of raw.frames.slice(0, closeIdx >= 0 ? closeIdx : undefined)) assert.equal(f.op, OP.BINARY);

    // One slow connection is one slow-consumer close.
    assert.equal(closes1 - closes0, 1, `one slow connection counted ${closes1 - closes0} times in wshub_slow_consumer_closes_total`);
    await echoRtt(other, 'after');
    other.close();
    raw.destroy();
    await inst.teardown();
  } finally {
    pinging = false;
    if (raw) raw.destroy();
    if (other) other.terminate();
    await cleanup(inst);
  }
}

test('slow consumer (steady stream): a client that never reads is closed with 1013, counted once, and does not delay others', { timeout: 60000 }, (t) => slowConsumer(t, 'steady'));

test('slow consumer (burst): a client that never reads is closed with 1013, counted once, and does not delay others', { timeout: 60000 }, (t) => slowConsumer(t, 'burst'));

// ------------------------------------------------------------------ limits

test('limits: 1009 for a message over limits.max_message_bytes, 1007 for invalid UTF-8, 1002 for protocol violations', { timeout: 60000 }, async (t) => {
  const MAX = 4096;
  const inst = await start({ env: { WSHUB_LIMITS_MAX_MESSAGE_BYTES: String(MAX), WSHUB_WEBSOCKET_CLOSE_TIMEOUT_MS: '2000' } });
  try {
    await t.test('1009: one message over the limit (ws client)', async () => {
      const ws = await openWs(`${inst.wsUrl}/echo`);
      await echoRtt(ws, 'x'.repeat(MAX)); // exactly the limit is fine
      ws.send('y'.repeat(MAX + 1));
      assert.equal((await within(ws.closed, 5000, 'close')).code, 1009);
    });

    await t.test('1009: fragments under the limit that add up to more', async () => {
      const raw = await RawWs.connect(inst.port);
      raw.send(OP.BINARY, Buffer.alloc(2000, 1), { fin: false });
      raw.send(OP.CONT, Buffer.alloc(2000, 2), { fin: false });
      raw.send(OP.CONT, Buffer.alloc(2000, 3), { fin: true });
      assert.equal((await raw.waitClose()).code, 1009);
      await raw.waitEnd(3000);
      raw.destroy();
    });

    await t.test('1007: invalid UTF-8 in one text frame', async () => {
      const raw = await RawWs.connect(inst.port);
      raw.send(OP.TEXT, Buffer.from([0x68, 0x69, 0xff, 0x21]));
      assert.equal((await raw.waitClose()).code, 1007);
      await raw.waitEnd(3000);
      raw.destroy();
    });

    await t.test('1007: invalid UTF-8 in the first fragment closes before the final fragment is sent', async () => {
      const raw = await RawWs.connect(inst.port);
      raw.send(OP.TEXT, Buffer.concat([Buffer.from('hello '), Buffer.from([0xed, 0xa0, 0x80])]), { fin: false }); // a surrogate
      const c = await raw.waitClose(3000);
      assert.equal(c.code, 1007);
      assert.equal(raw.frames.filter((f) => f.op !== OP.CLOSE).length, 0, 'nothing but the close');
      raw.destroy();
    });

    await t.test('1007: a sequence split across fragments that turns invalid closes before the final fragment', async () => {
      const raw = await RawWs.connect(inst.port);
      raw.send(OP.TEXT, Buffer.from([0x61, 0xce]), { fin: false }); // 0xce starts a 2-byte sequence
      raw.send(OP.CONT, Buffer.from([0x41]), { fin: false });       // not a continuation byte
      const c = await raw.waitClose(3000);
      assert.equal(c.code, 1007);
      raw.destroy();
    });

    await t.test('valid UTF-8 split across fragments is echoed whole', async () => {
      const raw = await RawWs.connect(inst.port);
      const euro = Buffer.from('€'); // e2 82 ac
      raw.send(OP.TEXT, Buffer.concat([Buffer.from('a'), euro.subarray(0, 1)]), { fin: false });
      raw.send(OP.CONT, euro.subarray(1, 2), { fin: false });
      raw.send(OP.CONT, Buffer.concat([euro.subarray(2), Buffer.from('b')]), { fin: true });
      await raw.waitFrames(1);
      assert.equal(raw.frames[0].op, OP.TEXT);
      assert.equal(raw.frames[0].payload.toString(), 'a€b');
      raw.destroy();
    });

    const violations = [
      ['an unmasked client frame', (raw) => raw.send(OP.TEXT, 'hello', { mask: false })],
      ['a reserved data opcode (0x3)', (raw) => raw.send(3, 'hello')],
      ['a reserved control opcode (0xB)', (raw) => raw.send(0xb, '')],
      ['RSV1 set without an extension', (raw) => raw.send(OP.TEXT, 'hello', { rsv: 4 })],
      ['RSV2 and RSV3 set', (raw) => raw.send(OP.BINARY, 'hello', { rsv: 3 })],
      ['a continuation frame with no message started', (raw) => raw.send(OP.CONT, 'hello')],
      ['a fragmented ping', (raw) => raw.send(OP.PING, 'p', { fin: false })],
      ['a ping payload over 125 bytes', (raw) => raw.send(OP.PING, Buffer.alloc(126))],
      ['a 16-bit payload length under 126 (not minimal)', (raw) => raw.write(Buffer.from([0x81, 0xfe, 0x00, 0x05, 0, 0, 0, 0, 0x68, 0x65, 0x6c, 0x6c, 0x6f]))],
    ];
    for (const [what, act] of violations) {
      await t.test(`1002: ${what}`, async () => {
        const raw = await RawWs.connect(inst.port);
        act(raw);
        const c = await raw.waitClose(3000).catch((err) => {
          const lines = inst.log().split('\n').filter((l) => /endpoint=echo/.test(l)).slice(-2);
          throw new Error(`${err.message}; server log: ${lines.join(' | ')}`);
        });
        assert.equal(c.code, 1002, `close after ${what}: ${JSON.stringify(c)}`);
        await raw.waitEnd(3000); // the server closes TCP after its close frame
        raw.destroy();
      });
    }

    assert.equal((await inst.get('/healthz')).status, 200);
    await inst.teardown();
  } finally {
    await cleanup(inst);
  }
});

// ------------------------------------------------------------------ close handshake

test('close handshake: close 1000 is answered with 1000 and the server closes TCP', { timeout: 60000 }, async (t) => {
  const inst = await start({});
  try {
    await t.test('raw client: echo of the close, then FIN from the server', async () => {
      const raw = await RawWs.connect(inst.port, { allowHalfOpen: true });
      raw.send(OP.CLOSE, closePayload(1000, 'bye'));
      const c = await raw.waitClose(3000);
      assert.equal(c.code, 1000);
      // The client sends nothing more and keeps its side open: the server must end TCP.
      await raw.waitEnd(3000);
      assert.ok(raw.ended || raw.closed);
      assert.equal(raw.frames.length, 1, 'exactly one frame: the close');
      raw.destroy();
    });

    await t.test('ws client: close(1000) sees 1000', async () => {
      const ws = await openWs(`${inst.wsUrl}/echo`);
      await echoRtt(ws, 'hello');
      ws.close(1000, 'done');
      const c = await within(ws.closed, 5000, 'close');
      assert.equal(c.code, 1000);
    });

    await waitFor(async () => (await metric(inst, 'wshub_connections_open{endpoint="echo"}')) === 0, 3000, 'no echo connection left');
    await inst.teardown();
  } finally {
    await cleanup(inst);
  }
});

test('close handshake: a client silent after the server\'s close (on shutdown) is dropped after websocket.close_timeout_ms', { timeout: 60000 }, async (t) => {
  const CLOSE_MS = 500;
  const inst = await start({ env: { WSHUB_WEBSOCKET_CLOSE_TIMEOUT_MS: String(CLOSE_MS), WSHUB_SHUTDOWN_TIMEOUT_MS: '10000' } });
  try {
    const raw = await RawWs.connect(inst.port, { allowHalfOpen: true });
    raw.send(OP.TEXT, 'hello');
    await raw.waitFrames(1);
    const t0 = Date.now();
    inst.child.kill('SIGTERM');
    const c = await raw.waitClose(3000);
    assert.equal(c.code, 1001);
    await raw.waitEnd(CLOSE_MS + 3000);
    const dropped = raw.endAt - c.at;
    t.diagnostic(`close 1001 after ${c.at - t0} ms, TCP closed ${dropped} ms after it`);
    assert.ok(dropped >= CLOSE_MS - 100, `dropped ${dropped} ms after the close frame, before websocket.close_timeout_ms`);
    assert.ok(dropped < CLOSE_MS + 1500, `dropped ${dropped} ms after the close frame`);
    // With no connection left the daemon exits long before shutdown.timeout_ms.
    const info = await within(inst.exited, 3000, 'exit after the last connection was dropped');
    assert.deepEqual(info, { code: 0, signal: null });
    assertNoSanitizer(inst.log(), inst.logFile);
    raw.destroy();
  } finally {
    await cleanup(inst);
  }
});

// ------------------------------------------------------------------ command line

// The environment without any WSHUB_* variable.
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WSHUB_')) env[k] = v;
  return { ...env, ...extra };
}

const tmpDirs = [];
process.on('exit', () => { for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true }); });
function tmpDir() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'wshub-e2e-cli-'));
  tmpDirs.push(d);
  return d;
}

function runCli(args, { env = {}, cwd = tmpDir(), timeout = 20000 } = {}) {
  const r = spawnSync(BIN, args, { env: cleanEnv(env), cwd, timeout, encoding: 'utf8' });
  if (r.error && r.error.code === 'ETIMEDOUT') throw new Error(`wshubd ${args.join(' ')} still running after ${timeout} ms:\n${r.stderr}`);
  return r;
}

function stderrLines(s) { return s.split('\n').filter((l) => l.length > 0); }

function b64urlJson(s) { return JSON.parse(Buffer.from(s, 'base64url').toString('utf8')); }

// Checks an HS256 JWT against secret; returns {header, payload}.
function verifyHs256(token, secret) {
  const parts = token.split('.');
  assert.equal(parts.length, 3, `not a JWT: ${token}`);
  const header = b64urlJson(parts[0]);
  const payload = b64urlJson(parts[1]);
  assert.equal(header.alg, 'HS256');
  const sig = crypto.createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest('base64url');
  assert.equal(parts[2], sig, 'HMAC-SHA256 signature with the given secret');
  return { header, payload };
}

test('command line: configuration errors exit non-zero with one stderr line naming the key', { timeout: 60000 }, async (t) => {
  const dir = tmpDir();
  const cases = [
    ['an unknown key in the file', { file: { listen: '127.0.0.1:18080', limits: { max_queued: 1 } } }, 'limits.max_queued'],
    ['an unknown top-level key', { file: { lisen: '127.0.0.1:18080' } }, 'lisen'],
    ['a wrong type in the file', { file: { workers: 'two' } }, 'workers'],
    ['a wrong type in a section', { file: { limits: { max_message_bytes: '1MB' } } }, 'limits.max_message_bytes'],
    ['WSHUB_WORKERS not a number', { env: { WSHUB_WORKERS: 'many' } }, 'WSHUB_WORKERS'],
    ['WSHUB_WORKERS out of range', { env: { WSHUB_WORKERS: '-1' } }, 'WSHUB_WORKERS'],
  ];
  for (const [what, c, key] of cases) {
    await t.test(what, () => {
      const args = [];
      if (c.file) {
        const f = path.join(dir, `bad-${key}.json`);
        fs.writeFileSync(f, JSON.stringify(c.file));
        args.push('-c', f);
      }
      const r = runCli(args, { env: c.env, cwd: dir });
      assert.notEqual(r.status, 0, `exit status for ${what}: ${r.status} ${r.signal}\n${r.stderr}`);
      assert.equal(r.signal, null);
      const lines = stderrLines(r.stderr);
      assert.equal(lines.length, 1, `stderr has ${lines.length} lines:\n${r.stderr}`);
      assert.ok(lines[0].includes(key), `stderr does not name ${key}: ${lines[0]}`);
      t.diagnostic(`${what}: ${lines[0]}`);
    });
  }

  await t.test('--check-config -c good.json exits 0', () => {
    const f = path.join(dir, 'good.json');
    fs.writeFileSync(f, JSON.stringify({ listen: '127.0.0.1:18080', workers: 2, log: { level: 'debug' }, limits: { max_queued_bytes: 65536 } }));
    const r = runCli(['--check-config', '-c', f], { cwd: dir });
    assert.equal(r.status, 0, r.stderr);
    assertNoSanitizer(r.stderr, 'stderr');
  });

  await t.test('--check-config with a bad file exits non-zero', () => {
    const f = path.join(dir, 'bad-check.json');
    fs.writeFileSync(f, JSON.stringify({ shutdown: { timeout: 5 } }));
    const r = runCli(['--check-config', '-c', f], { cwd: dir });
    assert.notEqual(r.status, 0);
    assert.ok(r.stderr.includes('shutdown.timeout'), r.stderr);
  });
});

test('command line: with no config and no env the daemon prints a banner with a valid development JWT', { timeout: 60000 }, async (t) => {
  // The embedded default listens on 127.0.0.1:8080. If another process holds that port, the
  // banner is checked with WSHUB_LISTEN on a free port instead (it does not depend on it).
  const attempt = async (env) => {
    const child = spawn(BIN, [], { env: cleanEnv(env), cwd: tmpDir(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
    const ready = await within(Promise.race([
      exited.then((e) => ({ exited: e })),
      waitFor(() => /Try it:/.test(out) && /\n\n$/.test(out) && out, 15000, 'the banner'),
    ]), 16000, 'the banner or an exit');
    return { child, ready, exited, out: () => out, err: () => err };
  };
  let run = await attempt({});
  let port = 8080;
  if (run.ready.exited) {
    if (!/8080/.test(run.err())) assert.fail(`wshubd exited without a banner: ${JSON.stringify(run.ready.exited)}\n${run.err()}`);
    port = await freePort();
    t.diagnostic(`127.0.0.1:8080 is taken here (${stderrLines(run.err()).pop()}); retrying with WSHUB_LISTEN=127.0.0.1:${port}`);
    run = await attempt({ WSHUB_LISTEN: `127.0.0.1:${port}` });
    assert.ok(!run.ready.exited, `wshubd exited: ${run.err()}`);
  }
  try {
    const out = run.out();
    t.diagnostic(out.split('\n').filter((l) => /secret|token|key|curl|wscat|websocat/i.test(l)).join(' | '));
    const secret = /JWT secret \(HS256\).*: (\S+)[ \t]*$/m.exec(out);
    assert.ok(secret, `no JWT secret in the banner:\n${out}`);
    const token = /(eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+)/.exec(out);
    assert.ok(token, `no JWT in the banner:\n${out}`);
    const { payload } = verifyHs256(token[1], secret[1]);
    const now = Math.floor(Date.now() / 1000);
    assert.equal(typeof payload.sub, 'string');
    assert.ok(payload.exp > now + 3600, `exp ${payload.exp} is not in the future`);
    // Example commands that point at this daemon.
    assert.ok(out.includes(`curl http://127.0.0.1:${port}/healthz`), out);
    assert.ok(out.includes(`ws://127.0.0.1:${port}/echo`), out);
    const r = await within(new Promise((resolve) => {
      const req = require('node:http').get({ host: '127.0.0.1', port, path: '/healthz', agent: false }, (res) => { res.resume(); resolve(res.statusCode); });
      req.on('error', () => resolve(0));
    }), 3000, 'GET /healthz');
    assert.equal(r, 200);
  } finally {
    run.child.kill('SIGTERM');
    const e = await within(run.exited, 10000, 'exit after SIGTERM').catch(() => { run.child.kill('SIGKILL'); return { code: null, signal: 'SIGKILL' }; });
    assert.deepEqual(e, { code: 0, signal: null }, run.err());
    assertNoSanitizer(run.err(), 'stderr');
  }
});

test('command line: wshubd token prints an HS256 JWT with sub, exp = now + ttl and the claims', { timeout: 30000 }, () => {
  const before = Math.floor(Date.now() / 1000);
  const r = runCli(['token', '--sub', 'user-456', '--ttl', '1h', '--claim', 'channels=["conversation:*"]', '--secret', 's']);
  const after = Math.floor(Date.now() / 1000);
  assert.equal(r.status, 0, r.stderr);
  assertNoSanitizer(r.stderr, 'stderr');
  const tok = r.stdout.trim();
  assert.ok(/^[\w-]+\.[\w-]+\.[\w-]+$/.test(tok), `not a single JWT on stdout: ${JSON.stringify(r.stdout)}`);
  const { payload } = verifyHs256(tok, 's');
  assert.equal(payload.sub, 'user-456');
  assert.ok(payload.exp >= before + 3600 && payload.exp <= after + 3600, `exp ${payload.exp} vs now ${before}..${after} + 3600`);
  assert.deepEqual(payload.channels, ['conversation:*']);
  // A different secret does not verify it.
  assert.throws(() => verifyHs256(tok, 't'));
});
