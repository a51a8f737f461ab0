'use strict';
// Issue 11, the transport side: what one client can do to the daemon with bytes alone.
// Each test reproduces a finding of the issue (numbered as there) and fails on the code
// before its fix; each starts its own wshubd (lib/server.js) and every wait is bounded.
//   WSHUB_BIN   the binary under test (scripts/test passes the sanitizer build)
const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');

const { start } = require('./lib/server');
const { sleep, within, waitFor, httpRequest, parseMetrics } = require('./lib/util');
const fs = require('node:fs');
const WebSocket = require('ws');
const { OP, encodeFrame, closeInfo, RawWs } = require('./lib/rawws');

const T = { timeout: 60000 };
const SECRET = 'hardening-secret';

function hs256(payload, secret = SECRET) {
  const b64u = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u(payload)}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}
const token = (sub, extra = {}) => hs256({ sub, exp: Math.floor(Date.now() / 1000) + 3600, ...extra });

async function metrics(inst, timeout = 3000) {
  const r = await inst.get('/metrics', { timeout });
  assert.equal(r.status, 200, 'GET /metrics');
  return parseMetrics(r.body);
}

// Opens a plain socket, writes `data` in one write, and collects what comes back until the
// server has sent `enough(bytes)` or closed; bounded.
function burst(port, data, enough, ms = 20000) {
  return within(new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const chunks = [];
    let total = 0;
    const done = () => { sock.destroy(); resolve(Buffer.concat(chunks)); };
    sock.on('connect', () => sock.write(data));
    sock.on('data', (d) => { chunks.push(d); total += d.length; if (enough(Buffer.concat(chunks), total)) done(); });
    sock.on('close', done);
    sock.on('error', () => {});
  }), ms, 'the burst\'s answers');
}

const count = (buf, needle) => {
  let n = 0;
  for (let i = buf.indexOf(needle); i >= 0; i = buf.indexOf(needle, i + needle.length)) n++;
  return n;
};

// ------------------------------------------------------------------ 1. more than 256 queued entries

test('1: 5,000 pipelined GET /healthz in one write are all answered, in order, and the daemon lives', T, async () => {
  const inst = await start();
  try {
    const req = Buffer.from(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${inst.port}\r\n\r\n`);
    const N = 5000;
    const got = await burst(inst.port, Buffer.concat(Array(N).fill(req)), (b) => count(b, 'HTTP/1.1 200 OK') >= N);
    assert.equal(count(got, 'HTTP/1.1 200 OK'), N, 'answers');
    assert.ok(inst.alive(), 'wshubd is alive');
    assert.equal((await inst.get('/healthz')).status, 200);
  } finally {
    await inst.teardown();
  }
});

for (const [what, n, size, op] of [
  ['300 /echo messages of 600 bytes', 300, 600, OP.TEXT],
  ['4,000 small /echo messages', 4000, 8, OP.TEXT],
  ['10,000 pings', 10000, 4, OP.PING],
]) {
  test(`1: ${what} in one write: every one answered, the daemon lives`, T, async () => {
    const inst = await start({ env: { WSHUB_LIMITS_MESSAGE_BURST: '20000' } });
    try {
      const ws = await RawWs.connect(inst.port);
      const payload = Buffer.alloc(size, 'x');
      ws.write(Buffer.concat(Array.from({ length: n }, () => encodeFrame(op, payload))));
      const want = op === OP.PING ? OP.PONG : OP.TEXT;
      await ws.until(() => ws.frames.filter((f) => f.op === want).length >= n || ws.closed, 20000, `${n} answers`);
      assert.equal(ws.frames.filter((f) => f.op === want).length, n, 'answers');
      assert.ok(!ws.closed, 'connection still open');
      ws.destroy();
      assert.ok(inst.alive(), 'wshubd is alive');
    } finally {
      await inst.teardown();
    }
  });
}

test('1: 400 API B chat_message to a conversation the sender is subscribed to, in one write', T, async () => {
  const inst = await start({ env: { WSHUB_JWT_SECRET: SECRET } });
  try {
    const ws = await RawWs.connect(inst.port, { path: `/api/ws?token=${token('u1')}` });
    const sub = encodeFrame(OP.TEXT, JSON.stringify({ type: 'subscribe', data: { channel: 'conversation:c1' } }));
    const msgs = Array.from({ length: 400 }, (_, i) =>
      encodeFrame(OP.TEXT, JSON.stringify({ type: 'chat_message', data: { conversation_id: 'c1', content: `m${i}` } })));
    ws.write(Buffer.concat([sub, ...msgs]));
    const events = () => ws.frames.filter((f) => f.op === OP.TEXT && f.payload.includes('"chat_message"'));
    await ws.until(() => events().length >= 400 || ws.closed, 20000, '400 chat_message events');
    const seq = events().map((f) => JSON.parse(f.payload).data.content);
    assert.deepEqual(seq, Array.from({ length: 400 }, (_, i) => `m${i}`));
    ws.destroy();
  } finally {
    await inst.teardown();
  }
});

// ------------------------------------------------------------------ 2. deferred reply after a reset

test('2: a POST /text/moderation answered after its client reset the connection: no use after free', T, async () => {
  // The answer (the thread pool's completion) and the reset must be seen in one poll of the
  // loop: one worker, kept busy by a pipelined flood on another connection.
  const inst = await start({ env: { WSHUB_MODERATION_KEYS: 'k1', WSHUB_WORKERS: '1' } });
  let flooding = true;
  const flood = net.connect({ host: '127.0.0.1', port: inst.port });
  flood.on('error', () => {});
  flood.on('data', () => {});
  const get = Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  const chunk = Buffer.concat(Array(500).fill(get));
  const pump = () => { while (flooding && !flood.destroyed && flood.write(chunk)); };
  flood.on('drain', pump);
  flood.on('connect', pump);
  try {
    const sample = 'lorem ipsum dolor sit amet '.repeat(300);
    const body = JSON.stringify({ sample, reference: 'r1' });
    const req = `POST /text/moderation HTTP/1.1\r\nHost: x\r\nx-chatsight-api-auth: k1\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const metricsReqs = Buffer.from('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(100));
    for (let round = 0; round < 60 && inst.alive(); round++) {
      await Promise.all(Array.from({ length: 20 }, (_, i) => new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: inst.port });
        s.on('error', () => {});
        s.on('close', resolve);
        s.on('connect', () => {
          // Answers the client never reads keep a write in flight: the reset then ends the
          // connection through the failed write, while the moderation answer is computed.
          s.write(Buffer.concat([metricsReqs, Buffer.from(req)]));
          setTimeout(() => s.resetAndDestroy(), 1 + (i % 10) * 0.5);
        });
      })));
    }
  } finally {
    flooding = false;
    flood.destroy();
  }
  try {
    // The worker still answers what was queued before the resets; the deadline sweep runs
    // every 50 ms and the keep-alive deadline is where a freed connection was put back.
    await waitFor(async () => !inst.alive() || (await inst.get('/healthz', { timeout: 3000 })).status === 200, 20000, '/healthz');
    await sleep(300);
    assert.ok(inst.alive(), 'wshubd is alive');
  } finally {
    await inst.teardown(); // fails on the sanitizer's heap-use-after-free report
  }
});

// ------------------------------------------------------------------ 3. descriptor exhaustion

// CPU seconds (user + system) the process has used so far.
function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

function openEcho(inst) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${inst.wsUrl}/echo`, { handshakeTimeout: 15000 });
    ws.on('open', () => resolve(ws));
    ws.on('error', () => resolve(null));
    ws.on('unexpected-response', () => resolve(null));
  });
}

test('3: descriptor limit 256, 2 workers, 350 clients at once: /healthz answers, CPU calm after the storm, new clients served as others leave', { timeout: 120000 }, async (t) => {
  const inst = await start({ wrap: ['prlimit', '--nofile=256:256'], env: { WSHUB_WORKERS: '2', WSHUB_LOG_LEVEL: 'warn' } });
  let clients = [];
  try {
    // Raw sockets hold descriptors without a handshake, like a storm of half-open clients.
    const storm = await Promise.all(Array.from({ length: 350 }, () => new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: inst.port });
      s.on('error', () => resolve(s));
      s.on('connect', () => resolve(s));
    })));
    await sleep(300);
    const during = await inst.get('/healthz', { timeout: 5000 });
    assert.equal(during.status, 200, '/healthz during the storm');
    const m = parseMetrics((await inst.get('/metrics', { timeout: 5000 })).body);
    t.diagnostic(`during: open ${m.wshub_tcp_connections_open}, paused workers ${m.wshub_accept_paused_workers}, pauses ${m.wshub_accept_pauses_total}`);
    // CPU once the storm stopped: the held sockets stay open, nothing new arrives.
    const c0 = cpuSeconds(inst.pid);
    await sleep(2000);
    const cpu = (cpuSeconds(inst.pid) - c0) / 2;
    t.diagnostic(`CPU after the storm: ${(cpu * 100).toFixed(1)}% of one core`);
    assert.ok(cpu < 0.3, `CPU ${(cpu * 100).toFixed(1)}% after the storm (limit 30%)`);
    // The storm leaves; new clients are served.
    for (const s of storm) s.destroy();
    await sleep(200);
    clients = await Promise.all(Array.from({ length: 100 }, () => openEcho(inst)));
    assert.equal(clients.filter(Boolean).length, 100, 'new WebSocket clients accepted after the storm left');
    const echoed = await within(new Promise((resolve) => { clients[0].once('message', (d) => resolve(String(d))); clients[0].send('still here'); }), 5000, 'echo');
    assert.equal(echoed, 'still here');
    assert.ok(!/accept.*\n(.*accept.*\n){50}/.test(inst.log()), 'the accept storm is not logged line by line');
  } finally {
    for (const c of clients) if (c) c.terminate();
    await inst.teardown();
  }
});

test('3: descriptor limit 256, 2 workers, 350 WebSocket clients at once: each is served or told 503, /healthz answers, CPU calm, room again as clients leave', { timeout: 60000 }, async (t) => {
  const inst = await start({ wrap: ['prlimit', '--nofile=256:256'], env: { WSHUB_WORKERS: '2', WSHUB_LOG_LEVEL: 'warn' } });
  const clients = [];
  try {
    const res = { open: 0, refused: {}, error: 0 };
    await Promise.all(Array.from({ length: 350 }, () => new Promise((resolve) => {
      const ws = new WebSocket(`${inst.wsUrl}/echo`, { handshakeTimeout: 20000 });
      ws.on('open', () => { res.open++; clients.push(ws); resolve(); });
      ws.on('unexpected-response', (req, r) => { res.refused[r.statusCode] = (res.refused[r.statusCode] || 0) + 1; resolve(); });
      ws.on('error', () => { res.error++; resolve(); });
    })));
    t.diagnostic(`350 clients: ${JSON.stringify(res)}`);
    assert.equal(res.error, 0, 'every client got an answer');
    assert.equal(res.open + (res.refused[503] || 0), 350, 'served, or refused with 503');
    assert.ok(res.open >= 150, `most are served (${res.open})`);
    assert.equal((await inst.get('/healthz', { timeout: 3000 })).status, 200, '/healthz at the limit');
    const c0 = cpuSeconds(inst.pid);
    await sleep(2000);
    const cpu = (cpuSeconds(inst.pid) - c0) / 2;
    assert.ok(cpu < 0.3, `CPU ${(cpu * 100).toFixed(1)}% after the storm`);
    for (const c of clients.splice(0, 50)) c.terminate();
    await sleep(300);
    const again = await Promise.all(Array.from({ length: 50 }, () => openEcho(inst)));
    clients.push(...again.filter(Boolean));
    assert.equal(again.filter(Boolean).length, 50, 'as many new clients as left are served');
  } finally {
    for (const c of clients) c.terminate();
    await inst.teardown();
  }
});

test('3: past limits.max_connections a client is still answered: 503 to an upgrade, 200 to /healthz; under it again, served', T, async () => {
  const inst = await start({ env: { WSHUB_LIMITS_MAX_CONNECTIONS: '3' } });
  const held = [];
  try {
    for (let i = 0; i < 3; i++) held.push(await RawWs.connect(inst.port));
    const refused = await new Promise((resolve) => {
      const ws = new WebSocket(`${inst.wsUrl}/echo`);
      ws.on('unexpected-response', (req, res) => { resolve(res.statusCode); ws.terminate(); });
      ws.on('open', () => { resolve('open'); ws.terminate(); });
      ws.on('error', () => resolve('error'));
    });
    assert.equal(refused, 503, 'the upgrade past the limit');
    assert.equal((await inst.get('/healthz')).status, 200, '/healthz past the limit');
    held.pop().destroy();
    await sleep(100);
    const ok = await RawWs.connect(inst.port);
    ok.destroy();
    const m = await metrics(inst);
    assert.ok(m['wshub_handshake_failures_total{reason="over_capacity"}'] >= 1);
  } finally {
    for (const h of held) h.destroy();
    await inst.teardown();
  }
});

// ------------------------------------------------------------------ limits an operator expects

test('limits: connections per IP and accept rate (loopback not exempt here): the excess is reset and counted', T, async () => {
  const inst = await start({ env: { WSHUB_LIMITS_EXEMPT_LOOPBACK: 'false', WSHUB_LIMITS_MAX_CONNECTIONS_PER_IP: '3', WSHUB_LIMITS_ACCEPT_RATE_PER_IP: '1000' } });
  const held = [];
  try {
    for (let i = 0; i < 3; i++) held.push(await RawWs.connect(inst.port));
    await assert.rejects(RawWs.connect(inst.port, { timeout: 3000 }), 'the 4th connection from one address');
    held.pop().destroy();
    await sleep(100);
    held.push(await RawWs.connect(inst.port));
    let m = await metrics(inst).catch(() => null);
    // /metrics itself is a connection from the same address: ask with one slot free.
    held.pop().destroy();
    await sleep(100);
    m = await metrics(inst);
    assert.ok(m['wshub_handshake_failures_total{reason="per_ip_limit"}'] >= 1, 'per_ip_limit counted');
    assert.equal(m.wshub_iplimit_addresses, 1, 'one address counted');
  } finally {
    for (const h of held) h.destroy();
    await inst.teardown();
  }
  const slow = await start({ env: { WSHUB_LIMITS_EXEMPT_LOOPBACK: 'false', WSHUB_LIMITS_ACCEPT_RATE_PER_IP: '5' } });
  try {
    await sleep(2100); // the readiness probes spent some of the bucket
    const results = [];
    for (let i = 0; i < 20; i++) results.push(await RawWs.connect(slow.port, { timeout: 3000 }).then((w) => { w.destroy(); return 'ok'; }, () => 'refused'));
    const ok = results.filter((r) => r === 'ok').length;
    assert.ok(ok >= 8 && ok <= 12, `a burst of twice the rate (10) is accepted, then refused: ${results.join(',')}`);
    await sleep(1500);
    const m = await metrics(slow);
    assert.ok(m['wshub_handshake_failures_total{reason="accept_rate"}'] >= 8, 'accept_rate counted');
  } finally {
    await slow.teardown();
  }
});

test('limits: a client over limits.message_rate gets its API\'s error, then close 1008; others are unaffected', T, async () => {
  const inst = await start({ env: { WSHUB_JWT_SECRET: SECRET, WSHUB_LIMITS_MESSAGE_RATE: '50', WSHUB_LIMITS_MESSAGE_BURST: '100' } });
  try {
    const calm = await RawWs.connect(inst.port, { path: `/api/ws?token=${token('calm')}` });
    const ws = await RawWs.connect(inst.port, { path: `/api/ws?token=${token('u1')}` });
    const ping = encodeFrame(OP.TEXT, JSON.stringify({ type: 'ping' }));
    ws.write(Buffer.concat(Array(300).fill(ping)));
    const c = await ws.waitClose(5000);
    assert.equal(c.code, 1008);
    const texts = ws.frames.filter((f) => f.op === OP.TEXT).map((f) => JSON.parse(f.payload));
    assert.equal(texts.filter((m) => m.type === 'pong').length, 100, 'the burst is served');
    const err = texts.find((m) => m.type === 'error');
    assert.ok(err && err.data.code === 'rate_limited', `an error in API B's format: ${JSON.stringify(err)}`);
    calm.send(OP.TEXT, JSON.stringify({ type: 'ping' }));
    await calm.until(() => calm.frames.some((f) => f.op === OP.TEXT && JSON.parse(f.payload).type === 'pong'), 3000, 'pong');
    calm.destroy();
    const m = await metrics(inst);
    assert.equal(m.wshub_rate_limited_closes_total, 1);
  } finally {
    await inst.teardown();
  }
});

test('limits: a silent client gets a ping; one that never answers is closed 1001 "ping timeout", one that answers stays', T, async () => {
  const inst = await start({ env: { WSHUB_WEBSOCKET_PING_INTERVAL_MS: '300', WSHUB_WEBSOCKET_PING_TIMEOUT_MS: '300' } });
  try {
    const mute = await RawWs.connect(inst.port); // RawWs answers nothing by itself
    const live = await new Promise((resolve, reject) => { const w = new WebSocket(`${inst.wsUrl}/echo`); w.on('open', () => resolve(w)); w.on('error', reject); });
    let pings = 0;
    live.on('ping', () => pings++);
    const c = await mute.waitClose(5000);
    assert.deepEqual({ code: c.code, reason: c.reason }, { code: 1001, reason: 'ping timeout' });
    assert.ok(mute.frames.some((f) => f.op === OP.PING), 'the mute client was pinged first');
    await sleep(1000);
    assert.ok(pings >= 2, `the live client was pinged (${pings}) and kept`);
    assert.equal(live.readyState, WebSocket.OPEN);
    live.terminate();
    const m = await metrics(inst);
    assert.equal(m.wshub_ping_timeouts_total, 1);
  } finally {
    await inst.teardown();
  }
});

test('limits: a connection that sends no complete request within http.handshake_timeout_ms is closed', T, async () => {
  const inst = await start({ env: { WSHUB_HTTP_HANDSHAKE_TIMEOUT_MS: '300' } });
  try {
    const s = net.connect({ host: '127.0.0.1', port: inst.port });
    s.on('error', () => {});
    await new Promise((r) => s.on('connect', r));
    s.resume();
    s.write('GET /echo HTTP/1.1\r\nHost: x\r\n'); // never finished
    const t0 = Date.now();
    await within(new Promise((r) => s.on('close', r)), 3000, 'the server to close');
    assert.ok(Date.now() - t0 < 2000);
  } finally {
    await inst.teardown();
  }
});

test('limits: unfinished inbound messages of all connections share limits.max_inbound_total_bytes (1013 past it)', T, async () => {
  const inst = await start({ env: { WSHUB_LIMITS_MAX_INBOUND_TOTAL_BYTES: String(1024 * 1024) } });
  const conns = [];
  try {
    // A frame header announcing 900 KB, then 600 KB of it, on three connections.
    const frame = encodeFrame(OP.BINARY, Buffer.alloc(900 * 1024, 1));
    for (let i = 0; i < 3; i++) {
      const ws = await RawWs.connect(inst.port);
      conns.push(ws);
      ws.write(frame.subarray(0, 600 * 1024));
      await sleep(100);
    }
    const closed = conns.filter((w) => w.closeFrame());
    assert.ok(closed.length >= 1, 'a connection past the bound was closed');
    for (const w of closed) assert.equal(closeInfo(w.closeFrame()).code, 1013);
    const m = await metrics(inst);
    assert.ok(m.wshub_ws_inbound_bytes <= 1024 * 1024 + 64 * 1024, `held ${m.wshub_ws_inbound_bytes}`);
    for (const w of conns) w.destroy();
    await waitFor(async () => (await metrics(inst)).wshub_ws_inbound_bytes === 0, 3000, 'the held bytes to be released');
  } finally {
    for (const w of conns) w.destroy();
    await inst.teardown();
  }
});

test('limits: replies queued for clients that do not read share limits.max_queued_total_bytes (slow consumer past it)', T, async () => {
  const inst = await start({ env: { WSHUB_LIMITS_MAX_QUEUED_TOTAL_BYTES: String(8 * 1024 * 1024), WSHUB_LIMITS_MAX_QUEUED_BYTES: String(256 * 1024 * 1024), WSHUB_LIMITS_MAX_MESSAGE_BYTES: String(2 * 1024 * 1024) } });
  const conns = [];
  try {
    const msg = encodeFrame(OP.BINARY, Buffer.alloc(1024 * 1024, 2));
    for (let i = 0; i < 8; i++) {
      const ws = await RawWs.connect(inst.port);
      ws.sock.pause(); // reads nothing: every echo stays queued in the server
      conns.push(ws);
    }
    for (const ws of conns) for (let k = 0; k < 8; k++) ws.write(msg);
    await waitFor(async () => (await metrics(inst)).wshub_slow_consumer_closes_total >= 1, 10000, 'a slow-consumer close');
    // Enforced on the 50 ms tick: within a few ticks the queued replies are under the bound.
    await waitFor(async () => (await metrics(inst)).wshub_queued_reply_bytes <= 8 * 1024 * 1024, 3000, 'the queued replies under the bound');
    assert.equal((await inst.get('/healthz')).status, 200, 'other clients are still answered');
  } finally {
    for (const w of conns) w.destroy();
    await inst.teardown();
  }
});

// ------------------------------------------------------------------ 4. bodies before credentials

test('4: request bodies are not read before the key is checked; the bodies held have a process-wide bound (503)', T, async () => {
  const inst = await start({ env: { WSHUB_API_KEY: 'k', WSHUB_MODERATION_KEYS: 'mk', WSHUB_HTTP_MAX_BODY_TOTAL_BYTES: String(3 * 1024 * 1024) } });
  const socks = [];
  try {
    // Unauthenticated partial bodies are read and dropped, never held: 20 x 900 KB in flight
    // hold nothing (the old code held every one, 413 MiB for 400).
    const partial = [];
    for (const [path, auth] of [['/api/publish', 'Authorization: Bearer wrong'], ['/text/moderation', 'x-chatsight-api-auth: wrong']]) {
      for (let i = 0; i < 10; i++) {
        const s = net.connect({ host: '127.0.0.1', port: inst.port });
        socks.push(s);
        s.on('error', () => {});
        let got = '';
        s.on('data', (d) => { got += d; });
        partial.push({ s, got: () => got });
        await new Promise((r) => s.on('connect', r));
        s.write(`POST ${path} HTTP/1.1\r\nHost: x\r\n${auth}\r\nContent-Length: 1048576\r\n\r\n` + 'x'.repeat(900000));
      }
    }
    await sleep(300);
    assert.equal((await metrics(inst)).wshub_http_body_bytes, 0, 'no unauthenticated body is held');
    // Completed, each gets its API's 401.
    for (const p of partial) p.s.write('x'.repeat(1048576 - 900000));
    await waitFor(() => partial.every((p) => /^HTTP\/1\.1 401 /.test(p.got())), 5000, 'every unauthenticated POST to get 401');
    // Authenticated partial bodies: the 4th 1 MiB body would pass the 3 MiB bound.
    const head = 'POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Length: 1048000\r\n\r\n';
    const answers = [];
    for (let i = 0; i < 4; i++) {
      const s = net.connect({ host: '127.0.0.1', port: inst.port });
      socks.push(s);
      s.on('error', () => {});
      let got = '';
      s.on('data', (d) => { got += d; });
      answers.push(() => got);
      await new Promise((r) => s.on('connect', r));
      s.write(head + 'x'.repeat(1000000));
      await sleep(150);
    }
    await waitFor(() => answers[3]().startsWith('HTTP/1.1 503'), 3000, 'the 4th body to get 503');
    assert.match(answers[3](), /"busy"/);
    const m = await metrics(inst);
    assert.ok(m.wshub_http_body_bytes <= 3 * 1024 * 1024, `held ${m.wshub_http_body_bytes}`);
    assert.ok(m['wshub_handshake_failures_total{reason="body_memory"}'] >= 1);
    for (const s of socks) s.destroy();
    await waitFor(async () => (await metrics(inst)).wshub_http_body_bytes === 0, 3000, 'the bodies to be released');
  } finally {
    for (const s of socks) s.destroy();
    await inst.teardown();
  }
});

// ------------------------------------------------------------------ 7. valid input refused

test('7: a JWT of 8 KB in the query or the Authorization header gets the API\'s auth answer, not 431', T, async () => {
  const inst = await start({ env: { WSHUB_JWT_SECRET: SECRET } });
  try {
    const big = token('u-big', { pad: 'p'.repeat(6000) });
    assert.ok(big.length > 8000);
    const ws = await RawWs.connect(inst.port, { path: `/api/ws?token=${big}` });
    ws.destroy();
    const bad = hs256({ sub: 'x', exp: Math.floor(Date.now() / 1000) + 60, pad: 'p'.repeat(6000) }, 'wrong-secret');
    const r = await httpRequest(inst, { path: '/api/ws', headers: { Authorization: `Bearer ${bad}`, Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13' } });
    assert.equal(r.status, 401);
    const huge = await burst(inst.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(17000)}\r\n\r\n`, (b) => b.includes('\r\n\r\n'), 3000);
    assert.match(huge.toString(), /^HTTP\/1\.1 431 /, 'past 16 KiB: 431');
  } finally {
    await inst.teardown();
  }
});

for (const code of [1012, 1013, 1014]) {
  test(`7: a client's close code ${code} (IANA-registered) is accepted and echoed, not answered with 1002`, T, async () => {
    const inst = await start();
    try {
      const ws = await RawWs.connect(inst.port);
      const p = Buffer.alloc(2);
      p.writeUInt16BE(code);
      ws.send(OP.CLOSE, p);
      const c = await ws.waitClose(3000);
      assert.equal(c.code, code);
      await ws.waitEnd(3000);
    } finally {
      await inst.teardown();
    }
  });
}

// ------------------------------------------------------------------ 8. errors dropped on the floor

test('8: the peer of a connection reset right away is logged as it was at accept (no "?:0"); ordinary closes are not "shutdown failed"', T, async () => {
  const inst = await start({ env: { WSHUB_LOG_LEVEL: 'debug' } });
  try {
    for (let i = 0; i < 30; i++) {
      const s = net.connect({ host: '127.0.0.1', port: inst.port });
      s.on('error', () => {});
      await new Promise((r) => s.on('connect', r));
      s.resetAndDestroy();
    }
    for (let i = 0; i < 10; i++) {
      const ws = await RawWs.connect(inst.port);
      ws.send(OP.CLOSE, Buffer.from([0x03, 0xe8]));
      ws.sock.end();
      await ws.waitEnd(3000);
    }
    await sleep(300);
    const log = inst.log();
    assert.ok(!log.includes('?:0'), 'no unknown peer in the log');
    assert.ok(!log.includes('shutdown failed'), 'no "shutdown failed" for ordinary closes');
  } finally {
    await inst.teardown();
  }
});

// 8, the gauges that wrapped under churn: tests/unit/test_metrics.c (a race too narrow to
// provoke from here reliably; the unit test renders the counters a race can leave).

// ------------------------------------------------------------------ 9. large HTTP answers

test('9: a GET /thread.history of more than 4 MiB is sent whole, in pieces as the socket drains', T, async () => {
  const inst = await start({ env: { WSHUB_FLOW_HISTORY_LIMIT: '100', WSHUB_FLOW_MAX_HISTORY_BYTES: '16777216', WSHUB_FLOW_MAX_HISTORY_TOTAL_BYTES: '67108864', WSHUB_API_KEY: 'k' } });
  try {
    const text = 'h'.repeat(60000);
    for (let i = 0; i < 90; i++) {
      const r = await httpRequest(inst, { method: 'POST', path: '/api/publish', headers: { Authorization: 'Bearer k', 'Content-Type': 'application/json' },
        body: JSON.stringify({ channel: 'thread:big', event: 'message', data: { text: `${i}:${text}` } }) });
      assert.equal(r.status, 200, r.body);
    }
    const r = await httpRequest(inst, { path: '/thread.history', headers: { 'x-flowai-clientid': 'c', 'x-flowai-threadid': 'big' }, timeout: 20000 });
    assert.equal(r.status, 200);
    assert.ok(r.body.length > 4 * 1024 * 1024, `body ${r.body.length} bytes`);
    const h = JSON.parse(r.body);
    assert.equal(h.payload.history.length, 90);
  } finally {
    await inst.teardown();
  }
});

test('9: the unsent pieces of large answers count in limits.max_queued_total_bytes', T, async () => {
  const inst = await start({ env: { WSHUB_FLOW_MAX_HISTORY_BYTES: '16777216', WSHUB_API_KEY: 'k',
    WSHUB_LIMITS_MAX_QUEUED_TOTAL_BYTES: String(8 * 1024 * 1024), WSHUB_WORKERS: '1' } });
  const socks = [];
  try {
    const text = 'h'.repeat(60000);
    for (let i = 0; i < 60; i++) {
      await httpRequest(inst, { method: 'POST', path: '/api/publish', headers: { Authorization: 'Bearer k' },
        body: JSON.stringify({ channel: 'thread:big', event: 'message', data: { text: `${i}:${text}` } }) });
    }
    // Eight clients ask for the 3.6 MB history and read nothing: 29 MB held without a bound.
    const req = 'GET /thread.history HTTP/1.1\r\nHost: x\r\nx-flowai-clientid: c\r\nx-flowai-threadid: big\r\n\r\n';
    for (let i = 0; i < 8; i++) {
      const s = net.connect({ host: '127.0.0.1', port: inst.port });
      socks.push(s);
      s.on('error', () => {});
      await new Promise((r) => s.on('connect', r));
      s.pause();
      s.write(req);
    }
    // The one worker builds eight 3.6 MB answers before it reads /metrics: seconds under TSan.
    await waitFor(async () => (await metrics(inst, 20000)).wshub_slow_consumer_closes_total >= 1, 30000,
      'a slow-consumer close');
    await waitFor(async () => (await metrics(inst, 20000)).wshub_queued_reply_bytes <= 8 * 1024 * 1024, 20000,
      'the held answers under the bound');
    assert.equal((await inst.get('/healthz')).status, 200);
  } finally {
    for (const s of socks) s.destroy();
    await inst.teardown();
  }
});

module.exports = { hs256, token, burst, count, metrics };
