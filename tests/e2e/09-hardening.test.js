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
const { OP, encodeFrame, closeInfo, RawWs } = require('./lib/rawws');

const T = { timeout: 60000 };
const SECRET = 'hardening-secret';

function hs256(payload, secret = SECRET) {
  const b64u = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u(payload)}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}
const token = (sub, extra = {}) => hs256({ sub, exp: Math.floor(Date.now() / 1000) + 3600, ...extra });

async function metrics(inst) {
  const r = await inst.get('/metrics', { timeout: 3000 });
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

module.exports = { hs256, token, burst, count, metrics };
