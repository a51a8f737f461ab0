'use strict';
// The mock backend's traffic tap (issue 15): /api/tap as a WebSocket and as Server-Sent
// Events, streaming every frame in and out and every publish as JSON, with its filters (api,
// conn, channel, dir, kind) honoured; its gate (mock.enabled, the API key as a Bearer header
// or ?key=), its errors naming the field, its bound on clients (mock.tap_max_clients), and a
// tap that cannot keep up losing events (told {"kind":"dropped"}, counted) instead of growing
// or being closed. Each server is a private wshubd (lib/server.js); every wait is bounded.
//   WSHUB_BIN   the binary under test (e.g. build-asan/wshubd)
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const WebSocket = require('ws');

const { start } = require('./lib/server');
const { sleep, waitFor, httpRequest, parseMetrics } = require('./lib/util');

const SECRET = 'e2e-tap-secret-5b1d0c93e7';
const API_KEY = 'e2e-tap-api-key-19f3';
const T = { timeout: 60000 };
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const BASE_ENV = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('WSHUB_') && k !== 'WSHUB_BIN')
  .map((k) => [k, undefined]));
async function startServer(env = {}) {
  const saved = {};
  for (const k of Object.keys(BASE_ENV)) { saved[k] = process.env[k]; delete process.env[k]; }
  try {
    // The embedded default (no -c): the mock backend is on unless the environment says not.
    return await start({ env: { WSHUB_WORKERS: '2', WSHUB_JWT_SECRET: SECRET, WSHUB_API_KEY: API_KEY, ...env } });
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
  }
}

const b64u = (x) => Buffer.from(x).toString('base64url');
function token(sub) {
  const input = `${b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64u(JSON.stringify({ sub, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600 }))}`;
  return `${input}.${crypto.createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}
let uniq = 0;
const unique = (p) => `${p}-${process.pid}-${++uniq}-${crypto.randomBytes(3).toString('hex')}`;

// ------------------------------------------------------------------ event collectors

// The events of one tap client, in order, with bounded waits on them.
class Events {
  constructor(label) {
    this.label = label;
    this.all = [];
    this.waiters = new Set();
    this.closed = false;
  }

  push(text) {
    let e;
    try { e = JSON.parse(text); } catch { e = { unparseable: text }; }
    this.all.push(e);
    for (const w of [...this.waiters]) w();
  }

  end() { this.closed = true; for (const w of [...this.waiters]) w(); }

  // Resolves the first event (from index `from`) for which pred is true.
  find(pred, { timeout = 5000, what = 'an event', from = 0 } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const e = this.all.slice(from).find(pred);
        if (e) { done(); resolve(e); return; }
        if (this.closed) { done(); reject(new Error(`${this.label}: closed while waiting for ${what}`)); }
      };
      const t = setTimeout(() => { done(); reject(new Error(`${this.label}: timed out waiting for ${what}; saw ${JSON.stringify(this.all).slice(0, 3000)}`)); }, timeout);
      const done = () => { clearTimeout(t); this.waiters.delete(check); };
      this.waiters.add(check);
      check();
    });
  }
}

// A WebSocket tap: resolves once its {"kind":"open"} event arrived.
async function wsTap(inst, query, { headers = { Authorization: `Bearer ${API_KEY}` }, label = `ws tap ${query}` } = {}) {
  const ev = new Events(label);
  const ws = new WebSocket(`${inst.wsUrl}/api/tap${query ? `?${query}` : ''}`, { headers, perMessageDeflate: false });
  ws.on('message', (d) => ev.push(d.toString('utf8')));
  ws.on('close', () => ev.end());
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('unexpected-response', (req, res) => reject(new Error(`${label}: refused ${res.statusCode}`)));
    ws.once('error', reject);
  });
  ev.ws = ws;
  ev.open = await ev.find((e) => e.kind === 'open', { what: 'the open event' });
  return ev;
}

// A Server-Sent Events tap: every `data:` line is one event.
async function sseTap(inst, query, { headers = {}, label = `sse tap ${query}` } = {}) {
  const ev = new Events(label);
  const res = await new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: inst.port, path: `/api/tap${query ? `?${query}` : ''}`, agent: false, headers }, resolve);
    req.on('error', reject);
    ev.req = req;
  });
  ev.res = res;
  assert.equal(res.statusCode, 200, `${label}: ${res.statusCode}`);
  assert.match(String(res.headers['content-type']), /^text\/event-stream/);
  let buf = '';
  res.setEncoding('utf8');
  res.on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      for (const line of block.split('\n')) if (line.startsWith('data: ')) ev.push(line.slice(6));
    }
  });
  res.on('end', () => ev.end());
  res.on('error', () => ev.end());
  ev.open = await ev.find((e) => e.kind === 'open', { what: 'the open event' });
  return ev;
}

// An API B client, with its messages in order.
async function serviceClient(inst, sub) {
  const ev = new Events(`service ${sub}`);
  const ws = new WebSocket(`${inst.wsUrl}/api/ws?token=${token(sub)}`, { perMessageDeflate: false });
  ws.on('message', (d) => ev.push(d.toString('utf8')));
  ws.on('close', () => ev.end());
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ev.ws = ws;
  ev.send = (m) => ws.send(JSON.stringify(m));
  return ev;
}

function upgrade(inst, p, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: inst.port, path: p, agent: false, timeout: 5000, headers: {
      Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'), ...headers } });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve({ status: 101 }); });
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(body); } catch { /* asserted by the caller */ }
        resolve({ status: res.statusCode, headers: res.headers, body, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`upgrade ${p}: no answer`)));
    req.on('error', reject);
    req.end();
  });
}

const bearer = { Authorization: `Bearer ${API_KEY}` };
const publish = (inst, body) => httpRequest(inst, { method: 'POST', path: '/api/publish', headers: bearer, body });
const metrics = async (inst) => parseMetrics((await httpRequest(inst, { path: '/metrics' })).text);

// ------------------------------------------------------------------ tests

describe('traffic tap: frames both ways and publishes, filtered', () => {
  let inst;
  before(async () => { inst = await startServer(); });
  after(async () => { await inst.teardown(); });

  test('a tap sees a client\'s frames both ways and a publish; api, conn, channel, dir and kind are honoured', T, async () => {
    const channel = unique('conversation:tap');
    const all = await wsTap(inst, 'api=service,server');
    assert.match(all.open.t, ISO_UTC);
    assert.deepEqual(all.open.filter, { api: ['server', 'service'] });
    const svcOnly = await wsTap(inst, 'api=service');
    const cable = await wsTap(inst, 'api=cable,flow');
    const inOnly = await wsTap(inst, 'api=service&dir=in');
    const pubs = await wsTap(inst, 'kind=publish');
    const otherChannel = await wsTap(inst, `channel=${encodeURIComponent(unique('elsewhere'))}`);
    const byChannel = await wsTap(inst, `channel=${encodeURIComponent(channel)}`);
    const byPrefix = await wsTap(inst, `channel=${encodeURIComponent(channel.slice(0, 20))}*&kind=publish`);

    const c = await serviceClient(inst, 'tap-user');
    c.send({ type: 'subscribe', data: { channel } });
    await c.find((m) => m.type === 'subscribed', { what: 'subscribed' });

    // The client's frame in, with its connection id; the confirmation out.
    const sub = await all.find((e) => e.kind === 'frame' && e.dir === 'in' && e.data.includes('"subscribe"'), { what: 'the subscribe frame' });
    assert.equal(sub.api, 'service');
    assert.equal(sub.opcode, 'text');
    assert.equal(sub.len, Buffer.byteLength(sub.data));
    assert.ok(Number.isInteger(sub.conn) && sub.conn > 0, JSON.stringify(sub));
    assert.match(sub.t, ISO_UTC);
    const conn = sub.conn;
    const conf = await all.find((e) => e.dir === 'out' && e.conn === conn && e.data.includes('"subscribed"'), { what: 'the subscribed frame' });
    assert.equal(JSON.parse(conf.data).data.channel, channel);

    // A tap of that one connection, as Server-Sent Events with the key in the query.
    const one = await sseTap(inst, `key=${API_KEY}&conn=${conn}`);
    assert.deepEqual(one.open.filter, { conn });

    const r = await publish(inst, { channel, event: 'tap_test', data: { n: 1, text: 'héllo' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.delivered, 1);
    await c.find((m) => m.type === 'tap_test', { what: 'the published event' });

    // The publish, once, with its outcome; its fan-out frame to the subscriber, with the channel.
    for (const tap of [all, pubs, byChannel, byPrefix]) {
      // eslint-disable-next-line no-await-in-loop
      const p = await tap.find((e) => e.kind === 'publish' && e.channel === channel, { what: `the publish (${tap.label})` });
      assert.equal(p.event, 'tap_test');
      assert.deepEqual(p.data, { n: 1, text: 'héllo' });
      assert.equal(p.delivered, 1);
      assert.equal(p.api, 'server');
    }
    for (const tap of [all, one, byChannel]) {
      // eslint-disable-next-line no-await-in-loop
      const f = await tap.find((e) => e.kind === 'frame' && e.dir === 'out' && e.channel === channel, { what: `the fan-out frame (${tap.label})` });
      assert.equal(f.conn, conn);
      assert.equal(f.api, 'service');
      const m = JSON.parse(f.data);
      assert.equal(m.type, 'tap_test');
      assert.deepEqual(m.data, { n: 1, text: 'héllo' });
    }

    // Both ways on the one-connection tap: a ping in, its pong out.
    c.send({ type: 'ping', data: {} });
    await c.find((m) => m.type === 'pong', { what: 'pong' });
    await one.find((e) => e.dir === 'in' && e.data.includes('"ping"'), { what: 'the ping in (sse)' });
    await one.find((e) => e.dir === 'out' && e.data.includes('"pong"'), { what: 'the pong out (sse)' });
    await all.find((e) => e.dir === 'out' && e.data.includes('"pong"'), { what: 'the pong out' });

    // A client's own publish (API B chat_message): its api is the publisher's.
    c.send({ type: 'chat_message', data: { conversation_id: channel.slice('conversation:'.length), content: 'from a client' } });
    await c.find((m) => m.type === 'chat_message', { what: 'the chat_message back' });
    const chat = await svcOnly.find((e) => e.kind === 'publish', { what: 'the chat_message publish' });
    assert.deepEqual([chat.api, chat.channel, chat.event, chat.delivered], ['service', channel, 'chat_message', 1]);
    assert.equal(chat.data.content, 'from a client');

    // Another client's frames do not reach the one-connection tap.
    const c2 = await serviceClient(inst, 'tap-other');
    c2.send({ type: 'ping', data: {} });
    await c2.find((m) => m.type === 'pong', { what: 'pong 2' });
    const pong2 = await all.find((e) => e.dir === 'out' && e.conn !== conn && e.data.includes('"pong"'), { what: 'the other pong' });
    await sleep(300); // every tap has had the time to get what it was going to get
    assert.ok(!one.all.some((e) => e.kind === 'frame' && e.conn !== conn), `conn filter: ${JSON.stringify(one.all)}`);
    // conn and dir are fields of frames only: a publish does not pass them; api is its publisher's.
    assert.ok(!one.all.some((e) => e.kind === 'publish'), `conn= leaves publishes out: ${JSON.stringify(one.all)}`);
    assert.ok(!inOnly.all.some((e) => e.kind === 'publish'), 'dir= leaves publishes out');
    assert.ok(!svcOnly.all.some((e) => e.kind === 'publish' && e.api !== 'service'), 'api=service leaves the server API\'s publish out');
    assert.ok(svcOnly.all.some((e) => e.kind === 'frame' && e.channel === channel), 'api=service has the fan-out');

    // api: the cable/flow tap saw no service frame; dir: the in tap saw only frames in.
    assert.ok(!cable.all.some((e) => e.kind === 'frame'), `api filter: ${JSON.stringify(cable.all)}`);
    assert.ok(inOnly.all.some((e) => e.kind === 'frame' && e.conn === pong2.conn && e.dir === 'in'));
    assert.ok(inOnly.all.filter((e) => e.kind === 'frame').every((e) => e.dir === 'in' && e.api === 'service'),
      `dir filter: ${JSON.stringify(inOnly.all)}`);
    // kind: only publishes; channel: nothing of another channel, and on ours the frames naming it.
    assert.ok(pubs.all.every((e) => e.kind === 'open' || e.kind === 'publish'), `kind filter: ${JSON.stringify(pubs.all)}`);
    assert.ok(!otherChannel.all.some((e) => e.kind !== 'open'), `channel filter: ${JSON.stringify(otherChannel.all)}`);
    assert.ok(byChannel.all.some((e) => e.dir === 'in' && e.data.includes('"subscribe"')), 'the subscribe names the channel');
    assert.ok(!byChannel.all.some((e) => e.kind === 'frame' && !(e.channel === channel || e.data.includes(channel))),
      `channel filter on frames: ${JSON.stringify(byChannel.all)}`);
    assert.ok(byPrefix.all.every((e) => e.kind === 'open' || (e.kind === 'publish' && e.channel.startsWith(channel.slice(0, 20)))));

    // No tap ever sees another tap's traffic.
    assert.ok(!all.all.some((e) => e.api === 'tap'));

    for (const t of [all, svcOnly, cable, inOnly, pubs, otherChannel, byChannel, byPrefix]) t.ws.close();
    one.req.destroy();
    c.ws.close();
    c2.ws.close();
    await waitFor(async () => (await metrics(inst)).wshub_mock_tap_clients === 0, 5000, 'every tap client gone');
  });

  test('binary frames as b64, long text truncated, closes with their code', T, async () => {
    const tap = await wsTap(inst, 'api=echo');
    const ws = new WebSocket(`${inst.wsUrl}/echo`, { perMessageDeflate: false });
    const got = [];
    ws.on('message', (d) => got.push(d));
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    ws.send(Buffer.from([0, 1, 2, 255]), { binary: true });
    const long = 'é'.repeat(5000); // 10,000 bytes: cut between characters
    ws.send(long);
    await waitFor(() => got.length === 2, 5000, 'the echoes');
    const bin = await tap.find((e) => e.opcode === 'binary' && e.dir === 'in', { what: 'binary in' });
    assert.equal(bin.b64, Buffer.from([0, 1, 2, 255]).toString('base64'));
    assert.equal(bin.len, 4);
    await tap.find((e) => e.opcode === 'binary' && e.dir === 'out' && e.b64 === bin.b64, { what: 'binary out' });
    const text = await tap.find((e) => e.opcode === 'text' && e.dir === 'in', { what: 'long text in' });
    assert.equal(text.truncated, true);
    assert.equal(text.len, 10000);
    assert.ok(Buffer.byteLength(text.data) <= 4096 && Buffer.byteLength(text.data) >= 4094, `${Buffer.byteLength(text.data)}`);
    assert.ok(long.startsWith(text.data));
    ws.close(4001, 'bye now');
    const close = await tap.find((e) => e.opcode === 'close' && e.dir === 'in', { what: 'close in' });
    assert.equal(close.code, 4001);
    assert.equal(close.data, 'bye now');
    tap.ws.close();
  });
});

describe('traffic tap: under traffic on both workers', () => {
  let inst;
  before(async () => { inst = await startServer({ WSHUB_LIMITS_MESSAGE_RATE: '0' }); });
  after(async () => { await inst.teardown(); });

  test('taps come and go while clients on every worker send and receive: a steady tap misses nothing', T, async () => {
    const channel = unique('conversation:busy');
    const steady = await wsTap(inst, 'api=service&dir=in&kind=frame');
    const clients = [];
    for (let i = 0; i < 16; i++) {
      // eslint-disable-next-line no-await-in-loop
      const c = await serviceClient(inst, `busy-${i}`);
      c.send({ type: 'subscribe', data: { channel } });
      // eslint-disable-next-line no-await-in-loop
      await c.find((m) => m.type === 'subscribed', { what: 'subscribed' });
      clients.push(c);
    }
    const PINGS = 100;
    let churn = 0;
    let stop = false;
    const churner = (async () => { // taps of every kind open and close meanwhile, on either worker
      while (!stop) {
        // eslint-disable-next-line no-await-in-loop
        const t = churn % 2 ? await wsTap(inst, `channel=${encodeURIComponent(channel)}`) : await sseTap(inst, 'kind=frame', { headers: bearer });
        // eslint-disable-next-line no-await-in-loop
        await sleep(10);
        if (t.ws) t.ws.close(); else t.req.destroy();
        churn++;
      }
    })();
    const publisher = (async () => {
      for (let i = 0; i < 50; i++) {
        // eslint-disable-next-line no-await-in-loop
        const r = await publish(inst, { channel, event: 'busy', data: { i } });
        assert.equal(r.status, 200, r.text);
      }
    })();
    await Promise.all(clients.map(async (c) => {
      for (let i = 0; i < PINGS; i++) {
        c.send({ type: 'ping', data: { i } });
        // eslint-disable-next-line no-await-in-loop
        if (i % 10 === 9) await waitFor(() => c.all.filter((x) => x.type === 'pong').length >= i + 1, 10000, 'pongs', 5);
      }
    }));
    await publisher;
    stop = true;
    await churner;
    for (const c of clients) {
      // eslint-disable-next-line no-await-in-loop
      await waitFor(() => c.all.filter((m) => m.type === 'busy').length === 50, 10000, 'every publish at every client');
    }
    // Every ping of every client, in order per connection, on the steady tap.
    await waitFor(() => steady.all.filter((e) => e.kind === 'frame' && e.data.includes('"ping"')).length === 16 * PINGS,
      20000, 'every ping on the steady tap');
    const byConn = new Map();
    for (const e of steady.all.filter((x) => x.kind === 'frame' && x.data.includes('"ping"'))) {
      const seq = byConn.get(e.conn) || [];
      seq.push(JSON.parse(e.data).data.i);
      byConn.set(e.conn, seq);
    }
    assert.equal(byConn.size, 16);
    for (const seq of byConn.values()) assert.deepEqual(seq, [...Array(PINGS).keys()]);
    assert.ok(!steady.all.some((e) => e.kind === 'dropped'));
    assert.ok(churn >= 4, `taps opened and closed meanwhile: ${churn}`);
    steady.ws.close();
    for (const c of clients) c.ws.close();
    await waitFor(async () => (await metrics(inst)).wshub_mock_tap_clients === 0, 5000, 'every tap gone');
  });
});

describe('traffic tap: gate, errors, bounds', () => {
  let inst;
  before(async () => { inst = await startServer({ WSHUB_MOCK_TAP_MAX_CLIENTS: '2' }); });
  after(async () => { await inst.teardown(); });

  test('the API key is required (Bearer or ?key=), as WebSocket and as SSE', T, async () => {
    for (const [p, headers] of [['/api/tap', {}], ['/api/tap?key=wrong', {}], ['/api/tap', { Authorization: 'Bearer wrong' }]]) {
      // eslint-disable-next-line no-await-in-loop
      const w = await upgrade(inst, p, headers);
      assert.equal(w.status, 401, `${p}: ${w.status} ${w.body}`);
      assert.equal(w.json.error, 'unauthorized');
      // eslint-disable-next-line no-await-in-loop
      const s = await httpRequest(inst, { path: p, headers });
      assert.equal(s.status, 401, `${p}: ${s.status} ${s.text}`);
      assert.equal(s.json.error, 'unauthorized');
      assert.equal(s.headers['www-authenticate'], 'Bearer');
    }
    const ok = await upgrade(inst, `/api/tap?key=${API_KEY}`);
    assert.equal(ok.status, 101);
  });

  test('malformed filters: 400 naming the field', T, async () => {
    const cases = [
      ['dir=sideways', 'dir'], ['kind=everything', 'kind'], ['api=service,nope', 'api'], ['api=', 'api'],
      ['conn=abc', 'conn'], ['conn=0', 'conn'], ['conn=-4', 'conn'], ['channel=', 'channel'],
      [`channel=${'x'.repeat(257)}`, 'channel'], ['channel=a%20b', 'channel'], ['chanel=x', 'chanel'],
    ];
    for (const [q, field] of cases) {
      // eslint-disable-next-line no-await-in-loop
      const s = await httpRequest(inst, { path: `/api/tap?${q}`, headers: bearer });
      assert.equal(s.status, 400, `${q}: ${s.status} ${s.text}`);
      assert.deepEqual([s.json.ok, s.json.error, s.json.field], [false, 'invalid_request', field], `${q}: ${s.text}`);
      assert.equal(typeof s.json.message, 'string');
      // eslint-disable-next-line no-await-in-loop
      const w = await upgrade(inst, `/api/tap?${q}`, bearer);
      assert.equal(w.status, 400, `${q} (ws): ${w.status} ${w.body}`);
      assert.equal(w.json.field, field, `${q} (ws): ${w.body}`);
    }
  });

  test('mock.tap_max_clients: 503 past it, a place again once a tap leaves', T, async () => {
    const a = await wsTap(inst, '');
    const b = await sseTap(inst, '', { headers: bearer });
    const w = await upgrade(inst, '/api/tap', bearer);
    assert.equal(w.status, 503, w.body);
    assert.equal(w.json.error, 'too_many_taps');
    const s = await httpRequest(inst, { path: '/api/tap', headers: bearer });
    assert.equal(s.status, 503, s.text);
    assert.equal(s.json.error, 'too_many_taps');
    assert.equal((await metrics(inst)).wshub_mock_tap_clients, 2);
    b.req.destroy();
    await waitFor(async () => (await metrics(inst)).wshub_mock_tap_clients === 1, 5000, 'the SSE tap gone');
    const c = await sseTap(inst, '', { headers: bearer });
    a.ws.close();
    c.req.destroy();
    await waitFor(async () => (await metrics(inst)).wshub_mock_tap_clients === 0, 5000, 'every tap gone');
  });

  test('mock.enabled false: no tap', T, async () => {
    const off = await startServer({ WSHUB_MOCK_ENABLED: 'false' });
    try {
      const w = await upgrade(off, '/api/tap', bearer);
      assert.equal(w.status, 404, w.body);
      const s = await httpRequest(off, { path: '/api/tap', headers: bearer });
      assert.equal(s.status, 404, s.text);
      assert.equal(s.json.error, 'not_found');
    } finally {
      await off.teardown();
    }
  });
});

describe('traffic tap: a tap that cannot keep up', () => {
  let inst;
  before(async () => {
    inst = await startServer({ WSHUB_MOCK_TAP_QUEUE_BYTES: '65536', WSHUB_LIMITS_MESSAGE_RATE: '0' });
  });
  after(async () => { await inst.teardown(); });

  test('loses events, told {"kind":"dropped"} and counted, and stays open', T, async () => {
    const tap = await wsTap(inst, 'api=echo');
    tap.ws._socket.pause(); // reads nothing: the kernel's buffers fill, then the server's
    const ws = new WebSocket(`${inst.wsUrl}/echo`, { perMessageDeflate: false });
    let echoed = 0;
    ws.on('message', () => { echoed++; });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    const msg = 'x'.repeat(4000);
    const N = 1000; // 8 MB of events: more than the tap's connection and its queue hold
    for (let sent = 0; sent < N; sent += 50) { // in steps, so that the echo client keeps up
      for (let i = 0; i < 50; i++) ws.send(msg);
      // eslint-disable-next-line no-await-in-loop
      await waitFor(() => echoed === sent + 50, 20000, 'the echoes of a step');
    }
    await waitFor(async () => (await metrics(inst)).wshub_mock_tap_dropped_total > 0, 10000, 'drops counted');
    const m = await metrics(inst);
    assert.ok(m.wshub_mock_tap_queued_bytes <= 65536, `${m.wshub_mock_tap_queued_bytes}`); // at most its queue
    tap.ws._socket.resume();
    const notice = await tap.find((e) => e.kind === 'dropped', { timeout: 20000, what: 'the dropped notice' });
    assert.ok(notice.n > 0 && Number.isInteger(notice.n), JSON.stringify(notice));
    assert.equal(m.wshub_slow_consumer_closes_total, 0, 'the tap was not closed as a slow consumer');
    // It still works: a new frame reaches it after what it kept.
    ws.send('after the drops');
    await tap.find((e) => e.data === 'after the drops' && e.dir === 'in', { timeout: 20000, what: 'a frame after the drops' });
    await tap.find((e) => e.data === 'after the drops' && e.dir === 'out', { timeout: 20000, what: 'its echo after the drops' });
    const got = tap.all.filter((e) => e.kind === 'frame').length;
    assert.ok(got < 2 * N, `some events were dropped (${got} of ${2 * N + 2})`);
    const total = tap.all.filter((e) => e.kind === 'dropped').reduce((s, e) => s + e.n, 0);
    assert.equal(got + total, 2 * N + 2, 'every event is either delivered or counted in a notice');
    ws.close();
    tap.ws.close();
    await waitFor(async () => (await metrics(inst)).wshub_mock_tap_queued_bytes === 0, 5000, 'the queue freed');
  });
});
