'use strict';
// permessage-deflate (RFC 7692; issue 18), websocket.compression: off by default (no extension
// answered, RSV1 refused), the negotiation rules, echo with and without the client's context
// takeover and with small windows (the `ws` package as the client), the shared compressed
// fan-out frame (raw sockets: the compressed subscribers get the very same bytes), the bounds
// (a decompression bomb gets 1009, invalid streams and invalid UTF-8 1007, RSV1 on a
// continuation or control frame 1002), and the zlib memory per compressed connection.
// Autobahn's 12.* and 13.* run in 10-autobahn.test.js.
//   WSHUB_BIN   the binary under test (e.g. build-asan/wshubd)
const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const zlib = require('node:zlib');
const WebSocket = require('ws');

const { start } = require('./lib/server');
const { RawWs, OP } = require('./lib/rawws');
const { within, waitFor, httpRequest, parseMetrics, now } = require('./lib/util');

const T = { timeout: 60000 };
const SECRET = 'e2e-deflate-secret-8d2f61';
const API_KEY = 'e2e-deflate-api-key-3a7e';
const OFFER = 'Sec-WebSocket-Extensions: permessage-deflate\r\n';

function startServer(env = {}) {
  return start({ env: { WSHUB_JWT_SECRET: SECRET, WSHUB_API_KEY: API_KEY, WSHUB_WORKERS: '2', ...env } });
}
const ON = { WSHUB_WEBSOCKET_COMPRESSION: 'true' };

async function metrics(srv) {
  const r = await httpRequest(srv, { path: '/metrics' });
  assert.equal(r.status, 200);
  return parseMetrics(r.body);
}

// The 101's Sec-WebSocket-Extensions for these request headers (undefined: none).
function upgradeExt(srv, ext) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, path: '/echo', agent: false, timeout: 5000, headers: {
      Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'), ...(ext === undefined ? {} : { 'Sec-WebSocket-Extensions': ext }) } });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve(res.headers['sec-websocket-extensions']); });
    req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
}

// A client's compressed payload: raw deflate, sync-flushed, without the 00 00 ff ff tail.
function deflate(buf) {
  const out = zlib.deflateRawSync(buf, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  assert.deepEqual([...out.subarray(-4)], [0, 0, 0xff, 0xff]);
  return out.subarray(0, -4);
}
const inflate = (buf) => zlib.inflateRawSync(Buffer.concat([buf, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });

function openWs(url, perMessageDeflate) {
  const ws = new WebSocket(url, { perMessageDeflate });
  return within(new Promise((resolve, reject) => {
    ws.once('upgrade', (res) => { ws.extHeader = res.headers['sec-websocket-extensions']; });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  }), 5000, 'ws open');
}
function echo(ws, msg, binary = false) {
  const p = new Promise((resolve) => ws.once('message', (d, isBinary) => resolve({ d, isBinary })));
  ws.send(msg, { binary });
  return within(p, 5000, 'echo');
}
function closeWs(ws) {
  return within(new Promise((resolve) => { ws.once('close', resolve); ws.close(1000); }), 5000, 'ws close');
}

test('off by default: an offer gets no extension, and RSV1 is a protocol error (1002)', T, async () => {
  const srv = await startServer();
  try {
    assert.equal(await upgradeExt(srv, 'permessage-deflate; client_max_window_bits'), undefined);
    const c = await RawWs.connect(srv.port, { headers: OFFER });
    c.send(OP.TEXT, deflate(Buffer.from('hello hello hello hello hello hello hello hello hello hello hello')), { rsv: 4 });
    assert.equal((await c.waitClose()).code, 1002);
    c.destroy();
    const m = await metrics(srv);
    assert.equal(m.wshub_deflate_connections, 0);
  } finally { await srv.teardown(); }
});

test('negotiation: the first acceptable offer, server_no_context_takeover always, the client\'s parameters honoured', T, async () => {
  const srv = await startServer(ON);
  try {
    const table = [
      [undefined, undefined],
      ['x-webkit-deflate-frame', undefined],
      ['permessage-deflate', 'permessage-deflate; server_no_context_takeover'],
      ['permessage-deflate; client_max_window_bits', 'permessage-deflate; server_no_context_takeover'],
      ['permessage-deflate; client_max_window_bits=10', 'permessage-deflate; server_no_context_takeover; client_max_window_bits=10'],
      ['permessage-deflate; client_no_context_takeover; server_max_window_bits=9',
        'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9'],
      ['permessage-deflate; server_max_window_bits="12"', 'permessage-deflate; server_no_context_takeover; server_max_window_bits=12'],
      // declined offers, then an acceptable one
      ['permessage-deflate; server_max_window_bits, permessage-deflate; server_max_window_bits=08, permessage-deflate; server_max_window_bits=16, ' +
        'permessage-deflate; client_max_window_bits=7, permessage-deflate; bogus, permessage-deflate; server_no_context_takeover=1, ' +
        'permessage-deflate; client_no_context_takeover; client_no_context_takeover, foo; server_max_window_bits=10, permessage-deflate; server_max_window_bits=11',
      'permessage-deflate; server_no_context_takeover; server_max_window_bits=11'],
      ['permessage-deflate; server_max_window_bits', undefined],
    ];
    for (const [offer, want] of table) assert.equal(await upgradeExt(srv, offer), want, `offer ${offer}`);
  } finally { await srv.teardown(); }
});

test('echo: the client\'s context takeover kept across messages, client_no_context_takeover, small windows', T, async () => {
  const srv = await startServer(ON);
  try {
    const r = crypto.createHash('sha256');
    const text = (i) => `{"i":${i},"text":"${'the quick brown fox jumps over the lazy dog '.repeat(1 + (i % 40))}"}`;
    for (const opts of [{ threshold: 0 }, { threshold: 0, clientNoContextTakeover: true },
      { threshold: 0, serverMaxWindowBits: 9, clientMaxWindowBits: 9 }, { threshold: 0, serverMaxWindowBits: 8 }]) {
      const ws = await openWs(`${srv.wsUrl}/echo`, opts);
      assert.match(ws.extHeader, /^permessage-deflate; server_no_context_takeover/);
      for (let i = 0; i < 100; i++) {
        const msg = i % 3 === 2 ? crypto.randomBytes(i * 37) : text(i);
        const got = await echo(ws, msg, i % 3 === 2);
        assert.equal(got.isBinary, i % 3 === 2);
        assert.ok(Buffer.from(msg).equals(got.d), `message ${i} with ${JSON.stringify(opts)}`);
        r.update(got.d);
      }
      await closeWs(ws);
    }
    const m = await metrics(srv);
    const inPlain = m['wshub_deflate_received_bytes_total{stage="plain"}'];
    const inWire = m['wshub_deflate_received_bytes_total{stage="compressed"}'];
    const outPlain = m['wshub_deflate_sent_bytes_total{stage="plain"}'];
    const outWire = m['wshub_deflate_sent_bytes_total{stage="compressed"}'];
    assert.ok(inPlain > 0 && inWire > 0 && inWire < inPlain, `received ${inWire} of ${inPlain}`);
    assert.ok(outPlain > 0 && outWire > 0 && outWire < outPlain, `sent ${outWire} of ${outPlain}`);
  } finally { await srv.teardown(); }
});

test('fan-out: every compressed subscriber gets the same compressed frame; others the plain one', T, async () => {
  const srv = await startServer(ON);
  try {
    const b64u = (x) => Buffer.from(x).toString('base64url');
    const input = `${b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64u(JSON.stringify({ sub: 'u1', iat: now(), exp: now() + 600 }))}`;
    const tok = `${input}.${crypto.createHmac('sha256', SECRET).update(input).digest('base64url')}`;
    const path = `/api/ws?token=${tok}`;
    const offers = [OFFER, OFFER, OFFER, '', 'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n'];
    const subs = [];
    for (const headers of offers) {
      const c = await RawWs.connect(srv.port, { path, headers });
      const n = c.frames.length;
      c.send(OP.TEXT, JSON.stringify({ type: 'subscribe', data: { channel: 'user:u1' } }));
      await c.until(() => c.frames.slice(n).some((f) => (f.rsv ? inflate(f.payload) : f.payload).toString().includes('subscribed')), 5000, 'subscribed');
      subs.push(c);
    }
    const data = { text: 'compressible '.repeat(200) };
    const marks = subs.map((c) => c.frames.length);
    const r = await httpRequest(srv, { method: 'POST', path: '/api/publish', headers: { Authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ channel: 'user:u1', event: 'notification', data }) });
    assert.equal(r.status, 200, r.body);
    await Promise.all(subs.map((c, i) => c.until(() => c.frames.length > marks[i], 5000, 'the event')));
    const ev = subs.map((c, i) => c.frames[marks[i]]);
    const plain = ev[3].payload;
    assert.equal(ev[3].rsv, 0);
    assert.ok(plain.toString().includes(data.text));
    for (const i of [0, 1, 2]) {
      assert.equal(ev[i].rsv, 4, `subscriber ${i}: RSV1`);
      assert.ok(ev[i].payload.equals(ev[0].payload), 'one compressed frame for every compressed subscriber');
      assert.ok(inflate(ev[i].payload).equals(plain));
      assert.ok(ev[i].payload.length < plain.length / 10, `${ev[i].payload.length} of ${plain.length}`);
    }
    assert.equal(ev[4].rsv, 0, 'a 10-bit window client gets the plain shared frame (the shared one is 15-bit)');
    assert.ok(ev[4].payload.equals(plain));
    const m = await metrics(srv);
    assert.equal(m.wshub_deflate_connections, 4);
    for (const c of subs) c.destroy();
    await waitFor(async () => (await metrics(srv)).wshub_deflate_connections === 0, 5000, 'the gauge back to 0');
  } finally { await srv.teardown(); }
});

test('bounds: a decompression bomb gets 1009, bad streams and bad UTF-8 1007, misplaced RSV1 1002', T, async () => {
  const srv = await startServer({ ...ON, WSHUB_LIMITS_MAX_MESSAGE_BYTES: '65536' });
  try {
    const cases = [
      ['1 MiB of zeros in 1 KiB', (c) => c.send(OP.BINARY, deflate(Buffer.alloc(1 << 20)), { rsv: 4 }), 1009],
      ['one byte past the limit', (c) => c.send(OP.BINARY, deflate(Buffer.alloc(65537, 'a')), { rsv: 4 }), 1009],
      ['fragmented, past the limit', (c) => {
        const z = deflate(Buffer.alloc(200000, 'b'));
        c.send(OP.BINARY, z.subarray(0, 10), { rsv: 4, fin: false });
        c.send(OP.CONT, z.subarray(10), { fin: true });
      }, 1009],
      ['not a deflate stream', (c) => c.send(OP.TEXT, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]), { rsv: 4 }), 1007],
      ['a stream cut in the middle', (c) => c.send(OP.TEXT, deflate(crypto.randomBytes(3000)).subarray(0, 1000), { rsv: 4 }), 1007],
      ['invalid UTF-8 once inflated', (c) => c.send(OP.TEXT, deflate(Buffer.concat([Buffer.alloc(100, 'x'), Buffer.from([0xc3, 0x28])])), { rsv: 4 }), 1007],
      ['RSV1 on a continuation frame', (c) => {
        c.send(OP.TEXT, deflate(Buffer.alloc(100, 'x')), { rsv: 4, fin: false });
        c.send(OP.CONT, Buffer.from('yy'), { rsv: 4 });
      }, 1002],
      ['RSV1 on a ping', (c) => c.send(OP.PING, Buffer.from('p'), { rsv: 4 }), 1002],
    ];
    for (const [what, act, code] of cases) {
      const c = await RawWs.connect(srv.port, { headers: OFFER });
      act(c);
      assert.equal((await c.waitClose()).code, code, what);
      c.destroy();
    }
    // A compressed message just under the limit still goes through (and back).
    const ws = await openWs(`${srv.wsUrl}/echo`, { threshold: 0 });
    const big = Buffer.alloc(65536, 'z');
    assert.ok((await echo(ws, big, true)).d.equals(big));
    await closeWs(ws);
  } finally { await srv.teardown(); }
});

test('memory: the zlib state a compressed connection keeps, with and without the client\'s context takeover', T, async (t) => {
  const srv = await startServer({ ...ON, WSHUB_WORKERS: '1' });
  try {
    const N = 50;
    const msg = JSON.stringify({ text: 'some text to compress '.repeat(50) });
    const measure = async (opts) => {
      const base = (await metrics(srv)).wshub_deflate_zlib_bytes;
      const conns = [];
      for (let i = 0; i < N; i++) {
        const ws = await openWs(`${srv.wsUrl}/echo`, { threshold: 0, ...opts });
        await echo(ws, msg);
        conns.push(ws);
      }
      const held = (await metrics(srv)).wshub_deflate_zlib_bytes - base;
      for (const ws of conns) await closeWs(ws);
      return held / N;
    };
    const cold = (await metrics(srv)).wshub_deflate_zlib_bytes;
    const warm = await openWs(`${srv.wsUrl}/echo`, { threshold: 0, clientNoContextTakeover: true });
    await echo(warm, msg); // the worker's compressor exists from here on
    await closeWs(warm);
    const worker = (await metrics(srv)).wshub_deflate_zlib_bytes - cold;
    t.diagnostic(`zlib bytes of the worker's 15-bit compressor (one per worker thread and window size used): ${worker}`);
    const takeover = await measure({});
    const noTakeover = await measure({ clientNoContextTakeover: true });
    const small = await measure({ clientMaxWindowBits: 10 });
    t.diagnostic(`zlib bytes per connection: context takeover ${takeover}, client_no_context_takeover ${noTakeover}, client_max_window_bits=10 ${small}`);
    assert.ok(takeover > 30000 && takeover < 48000, `takeover: ${takeover}`);
    assert.equal(noTakeover, 0);
    assert.ok(small < 10000, `10-bit window: ${small}`);
    await waitFor(async () => (await metrics(srv)).wshub_deflate_connections === 0, 5000, 'all closed');
  } finally { await srv.teardown(); }
});
