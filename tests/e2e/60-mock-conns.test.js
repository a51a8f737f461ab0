'use strict';
// The mock backend (issue 15): introspection, targeting, close/kick, tokens over HTTP, reset.
// One wshubd on the embedded default (mock.enabled on by itself, the development secret and
// API key, two workers), driven by real clients: `ws` for API B, cable and Flow, and
// @rails/actioncable (the official consumer, with the same two Node shims as the acceptance
// suite's lib/cable.js) for the kick that must make it reconnect by itself.
//
// What it pins down:
//  - GET /api/connections shows each session's id, api, peer, worker, connected_at, its
//    subject (API B) / member (cable) / client, session and thread (Flow), its subscriptions,
//    and the exact messages and wire bytes each way (computed here from the frames sent and
//    received); filters (?api, ?subject, ?member, ?thread) and pages (?limit, ?after, next).
//  - GET /api/channels counts subscribers per channel and API.
//  - POST /api/send and /api/connections/{id}/send reach exactly the targeted connections
//    (the others get nothing: a ping/pong barrier after each send proves it), on both workers.
//  - close with a code gives the client that code and reason; on /cable a `disconnect` first.
//  - tokens minted over HTTP work on /api/ws and /cable; malformed bodies name the field.
//
// Environment: WSHUB_BIN (the binary under test).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const ActionCable = require('@rails/actioncable');

const { start } = require('./lib/server');
const { within, waitFor, httpRequest, sleep } = require('./lib/util');

const KEY = 'wshub-development-api-key';
const MOD_KEY = 'wshub-development-moderation-key';
const T = { timeout: 60000 };
const CABLE_PROTOCOLS = ['actioncable-v1-json', 'actioncable-unsupported'];

let srv;
before(async () => {
  // Cable pings every 500 ms, so that the Rails monitor's short stale threshold below holds.
  srv = await start({ env: { WSHUB_WORKERS: '2', WSHUB_CABLE_PING_INTERVAL_MS: '500' } });
});
after(async () => {
  for (const c of Client.open) c.ws.terminate();
  if (srv) await srv.teardown();
});

// ------------------------------------------------------------------ HTTP

function api(method, path, body, { key = KEY } = {}) {
  return httpRequest(srv, { method, path, body, headers: key ? { Authorization: `Bearer ${key}` } : {} });
}

async function ok(method, path, body) {
  const r = await api(method, path, body);
  assert.equal(r.status, 200, `${method} ${path} ${JSON.stringify(body)}: ${r.status} ${r.text}`);
  return r.json;
}

async function bad(method, path, body, field, status = 400) {
  const r = await api(method, path, body);
  assert.equal(r.status, status, `${method} ${path} ${typeof body === 'string' ? body : JSON.stringify(body)}: ${r.text}`);
  assert.equal(r.json.ok, false);
  assert.equal(r.json.field, field, `the error names ${field}: ${r.text}`);
  assert.ok(r.json.message, 'a message says why');
  return r.json;
}

async function mint(sub, extra = {}) {
  const r = await ok('POST', '/api/tokens', { sub, ...extra });
  return r.token;
}

// ------------------------------------------------------------------ a `ws` client

// Frames in order, with bounded waits, and the exact wire bytes each way (frames of at most
// 65,535 bytes: 2 + payload from the server, 2 + 4 (mask) + payload from the client, +2 past 125).
const wire = (len, masked) => (len < 126 ? 2 : 4) + (masked ? 4 : 0) + len;

class Client {
  constructor(path, { headers = {}, protocols } = {}) {
    this.frames = [];
    this.waiters = new Set();
    this.closed = null;
    this.sentMsgs = 0;
    this.sentBytes = 0;
    this.gotMsgs = 0;
    this.gotBytes = 0;
    this.ws = new WebSocket(`${srv.wsUrl}${path}`, protocols, { headers });
    Client.open.add(this);
    this.ws.on('message', (data, isBinary) => {
      this.gotMsgs++;
      this.gotBytes += wire(data.length, false);
      this.frames.push({ data: isBinary ? data : data.toString('utf8'), isBinary });
      this.wake();
    });
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString('utf8') };
      Client.open.delete(this);
      this.wake();
    });
    this.ws.on('error', () => {});
    this.opened = within(new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('unexpected-response', (req, res) => reject(new Error(`${path}: upgrade refused ${res.statusCode}`)));
    }), 5000, `${path} open`);
  }
  get port() { return this.ws._socket.localPort; }
  wake() { for (const w of this.waiters) w(); }
  send(v) {
    const text = typeof v === 'string' ? v : JSON.stringify(v);
    this.sentMsgs++;
    this.sentBytes += wire(Buffer.byteLength(text), true);
    this.ws.send(text);
  }
  // The next frame (JSON-parsed unless binary) that pred accepts; every frame before it must
  // be accepted by skip (default: none may come first).
  next(pred = () => true, { ms = 5000, skip = () => false, what = 'a frame' } = {}) {
    return within(new Promise((resolve, reject) => {
      const check = () => {
        while (this.frames.length) {
          const f = this.frames.shift();
          let v = f.data;
          if (!f.isBinary) try { v = JSON.parse(f.data); } catch { /* raw text */ }
          if (pred(v, f)) { this.waiters.delete(check); resolve(v); return; }
          if (!skip(v, f)) { this.waiters.delete(check); reject(new Error(`unexpected frame before ${what}: ${f.data}`)); return; }
        }
        if (this.closed) { this.waiters.delete(check); reject(new Error(`closed ${JSON.stringify(this.closed)} before ${what}`)); }
      };
      this.waiters.add(check);
      check();
    }), ms, what);
  }
  raw(ms = 5000) { // the next frame as it came
    return within(new Promise((resolve) => {
      const check = () => { if (this.frames.length) { this.waiters.delete(check); resolve(this.frames.shift()); } };
      this.waiters.add(check);
      check();
    }), ms, 'a raw frame');
  }
  whenClosed(ms = 5000) {
    return within(new Promise((resolve) => {
      const check = () => { if (this.closed) { this.waiters.delete(check); resolve(this.closed); } };
      this.waiters.add(check);
      check();
    }), ms, 'the close');
  }
  close() { if (!this.closed) this.ws.close(1000); }
}
Client.open = new Set();

const isPing = (v) => v && v.type === 'ping';

// API B: open, and subscribe to channels (each confirmed).
async function service(token, channels = []) {
  const c = new Client(`/api/ws?token=${token}`);
  await c.opened;
  for (const channel of channels) {
    c.send({ type: 'subscribe', data: { channel } });
    await c.next((v) => v.type === 'subscribed' && v.data.channel === channel, { what: `subscribed ${channel}` });
  }
  c.barrier = async () => { // nothing else arrives before the pong
    c.send({ type: 'ping' });
    await c.next((v) => v.type === 'pong', { what: 'pong' });
  };
  return c;
}

const notification = (member) => JSON.stringify({ channel: 'NotificationChannel', community_member_id: member });

// Cable on `ws`: welcome, then NotificationChannel of the member, confirmed. Its barrier is a
// subscription to another room (confirmed after everything sent before).
async function cable(token, member) {
  const c = new Client(`/cable?token=${token}`, { protocols: CABLE_PROTOCOLS });
  await c.opened;
  await c.next((v) => v.type === 'welcome', { what: 'welcome' });
  c.identifier = notification(member);
  c.send({ command: 'subscribe', identifier: c.identifier });
  await c.next((v) => v.type === 'confirm_subscription', { skip: isPing, what: 'confirm_subscription' });
  let room = 0;
  c.barrier = async () => {
    const identifier = JSON.stringify({ channel: 'Chats::RoomChannel', chat_room_id: `barrier-${member}-${room++}` });
    c.send({ command: 'subscribe', identifier });
    await c.next((v) => v.type === 'confirm_subscription' && v.identifier === identifier, { skip: isPing, what: 'barrier' });
  };
  return c;
}

let seq = 0;
const unique = (p) => `${p}-${process.pid}-${seq++}`;

// Flow: socket.info with a thread, then the socket (which joins the thread at once).
async function flow(threadId = unique('thread')) {
  const r = await httpRequest(srv, { path: '/socket.info', headers: { 'x-flowai-clientid': 'mock-client',
    'x-flowai-sessionid': unique('session'), 'x-flowai-threadid': threadId } });
  assert.equal(r.status, 200, r.text);
  const url = new URL(r.json.payload.endpoint);
  const c = new Client(url.pathname + url.search);
  await c.opened;
  c.threadId = threadId;
  c.barrier = async () => {
    c.send({ type: 'ping' });
    await c.next((v) => v.type === 'pong', { what: 'pong' });
  };
  return c;
}

async function list(query = '') {
  return ok('GET', `/api/connections${query}`);
}

async function recordOf(c) {
  const all = await list('?limit=10000');
  const r = all.connections.find((x) => x.peer === `127.0.0.1:${c.port}`);
  assert.ok(r, `a record for the client on port ${c.port}: ${JSON.stringify(all)}`);
  return r;
}

// Opens clients until one is on each worker; closes the others.
async function onBothWorkers(open) {
  const by = [null, null];
  for (let i = 0; i < 24 && !(by[0] && by[1]); i++) {
    const c = await open(i);
    c.record = await recordOf(c);
    if (by[c.record.worker]) c.close(); else by[c.record.worker] = c;
  }
  assert.ok(by[0] && by[1], 'clients on both workers');
  return by;
}

// ------------------------------------------------------------------ the gate

test('every control endpoint needs the API key; a server with mock.enabled off answers 404', T, async () => {
  const endpoints = [['GET', '/api/connections'], ['GET', '/api/connections/1'], ['GET', '/api/channels'],
    ['POST', '/api/send'], ['POST', '/api/close'], ['POST', '/api/connections/1/send'], ['POST', '/api/tokens'],
    ['POST', '/api/reset']];
  for (const [method, path] of endpoints) {
    for (const key of [null, 'wrong-key']) {
      const r = await api(method, path, method === 'POST' ? {} : undefined, { key });
      assert.equal(r.status, 401, `${method} ${path} with ${key}: ${r.text}`);
      assert.equal(r.json.error, 'unauthorized');
    }
  }
  const off = await start({ env: { WSHUB_MOCK_ENABLED: 'false' } });
  try {
    for (const [method, path] of endpoints) {
      const r = await httpRequest(off, { method, path, headers: { Authorization: `Bearer ${KEY}` }, body: method === 'POST' ? {} : undefined });
      assert.equal(r.status, 404, `${method} ${path} with mock.enabled off: ${r.text}`);
      assert.match(r.json.message, /mock\.enabled/);
    }
  } finally {
    await off.teardown();
  }
});

// ------------------------------------------------------------------ tokens

test('POST /api/tokens: tokens that work on /api/ws and /cable, expiry, and errors naming the field', T, async () => {
  const before = Math.floor(Date.now() / 1000);
  const r = await ok('POST', '/api/tokens', { sub: 'tok-user', ttl: '2m' });
  assert.ok(r.token.split('.').length === 3);
  assert.ok(Math.abs(Date.parse(r.expires_at) / 1000 - (before + 120)) <= 2, `expires_at ${r.expires_at}`);
  const payload = JSON.parse(Buffer.from(r.token.split('.')[1], 'base64url').toString());
  assert.equal(payload.sub, 'tok-user');
  assert.equal(payload.exp - payload.iat, 120);

  const b = await service(r.token, ['conversation:tok-1']);
  const rec = await recordOf(b);
  assert.equal(rec.subject, 'tok-user');
  b.close();

  const member = 7000 + (process.pid % 1000);
  const ct = await mint(`m-${member}`, { ttl: 600, claims: { community_member_id: member } });
  const c = await cable(ct, member);
  assert.equal((await recordOf(c)).member, member);
  c.close();

  // An expired token (claims.exp in the past) is refused by API B.
  const expired = await mint('late', { claims: { exp: before - 3600 } });
  const refused = new Client(`/api/ws?token=${expired}`);
  await assert.rejects(refused.opened, /401/);

  await bad('POST', '/api/tokens', {}, 'sub');
  await bad('POST', '/api/tokens', { sub: '' }, 'sub');
  await bad('POST', '/api/tokens', { sub: 42 }, 'sub');
  await bad('POST', '/api/tokens', { sub: 'a', ttl: 'soon' }, 'ttl');
  await bad('POST', '/api/tokens', { sub: 'a', ttl: -5 }, 'ttl');
  await bad('POST', '/api/tokens', { sub: 'a', claims: [1] }, 'claims');
  await bad('POST', '/api/tokens', { sub: 'a', claims: { sub: 'b' } }, 'claims.sub');
  await bad('POST', '/api/tokens', { sub: 'a', claims: { exp: 'later' } }, 'claims.exp');
  await bad('POST', '/api/tokens', '{"sub":', '(body)');
  await bad('POST', '/api/tokens', '[]', '(body)');
  const get = await api('GET', '/api/tokens');
  assert.equal(get.status, 405);
});

// ------------------------------------------------------------------ introspection

test('GET /api/connections: the right fields for API B, cable and Flow clients, exact counters, filters, pages', T, async () => {
  const subject = unique('alice');
  const b = await service(await mint(subject), ['conversation:intro-1']);
  b.send({ type: 'ping' });
  await b.next((v) => v.type === 'pong');
  const member = 8000 + (process.pid % 1000);
  const c = await cable(await mint(`m${member}`, { claims: { community_member_id: member } }), member);
  const f = await flow();
  const mod = new Client('/text/moderation', { headers: { 'x-chatsight-api-auth': MOD_KEY } });
  await mod.opened;
  try {
    const rb = await recordOf(b);
    assert.equal(rb.api, 'service');
    assert.equal(rb.subject, subject);
    assert.deepEqual(rb.subscriptions, [{ channel: `user:${subject}` }, { channel: 'conversation:intro-1' }]);
    assert.ok(Math.abs(Date.parse(rb.connected_at) - Date.now()) < 10000, `connected_at ${rb.connected_at}`);
    assert.ok(rb.worker === 0 || rb.worker === 1);
    assert.equal(rb.id % 2, rb.worker);
    // Exact: every frame each way is counted (subscribe + ping in; subscribed + pong out).
    assert.equal(rb.messages_in, b.sentMsgs);
    assert.equal(rb.messages_out, b.gotMsgs);
    assert.equal(rb.bytes_in, b.sentBytes);
    assert.equal(rb.bytes_out, b.gotBytes);
    assert.equal(rb.queued_bytes, 0);

    const rc = await recordOf(c);
    assert.equal(rc.api, 'cable');
    assert.equal(rc.member, member);
    assert.deepEqual(rc.subscriptions, [{ channel: `notification-channel-${member}`, identifier: c.identifier }]);
    assert.equal(rc.messages_in, c.sentMsgs);
    assert.ok(rc.messages_out >= 2, 'welcome and the confirmation (and pings)');
    assert.equal(rc.bytes_in, c.sentBytes);

    const rf = await recordOf(f);
    assert.equal(rf.api, 'flow');
    assert.equal(rf.client_id, 'mock-client');
    assert.equal(rf.thread, f.threadId);
    assert.ok(rf.session_id);
    assert.deepEqual(rf.subscriptions, [{ channel: `thread:${f.threadId}` }]);

    const rm = await recordOf(mod);
    assert.equal(rm.api, 'moderation');
    assert.deepEqual(rm.subscriptions, []);

    // One connection by id: the same record.
    const one = await ok('GET', `/api/connections/${rb.id}`);
    assert.equal(one.subject, subject);
    assert.equal(one.id, rb.id);

    // Filters.
    const byApi = await list('?api=cable&limit=10000');
    assert.ok(byApi.connections.length >= 1 && byApi.connections.every((x) => x.api === 'cable'));
    assert.deepEqual((await list(`?subject=${subject}`)).connections.map((x) => x.id), [rb.id]);
    assert.deepEqual((await list(`?member=${member}`)).connections.map((x) => x.id), [rc.id]);
    assert.deepEqual((await list(`?thread=${f.threadId}&api=flow`)).connections.map((x) => x.id), [rf.id]);
    assert.deepEqual((await list(`?subject=${subject}&api=cable`)).connections, []);

    // Pages: ids ascending, next, after.
    const all = await list('?limit=10000');
    assert.equal(all.count, all.total);
    assert.equal(all.next, null);
    const ids = all.connections.map((x) => x.id);
    assert.deepEqual(ids, [...ids].sort((x, y) => x - y));
    const seen = [];
    let after = '';
    for (let i = 0; i < 20; i++) {
      const p = await list(`?limit=2${after}`);
      assert.ok(p.count <= 2);
      seen.push(...p.connections.map((x) => x.id));
      if (p.next === null) break;
      assert.equal(p.next, p.connections[p.connections.length - 1].id);
      after = `&after=${p.next}`;
    }
    assert.deepEqual(seen, ids);

    await bad('GET', '/api/connections?limit=0', undefined, 'limit');
    await bad('GET', '/api/connections?limit=10001', undefined, 'limit');
    await bad('GET', '/api/connections?after=x', undefined, 'after');
    await bad('GET', '/api/connections?api=nope', undefined, 'api');
    await bad('GET', '/api/connections?member=abc', undefined, 'member');
    await bad('GET', '/api/connections/abc', undefined, 'id');
    await bad('GET', '/api/connections/999999999', undefined, 'id', 404);
  } finally {
    for (const x of [b, c, f, mod]) x.close();
  }
});

test('GET /api/channels: subscribers per channel and API, filters and pages', T, async () => {
  const room = unique('room');
  const subject = unique('chan');
  const b1 = await service(await mint(subject), [`conversation:${room}`]);
  const b2 = await service(await mint(`${subject}-2`), [`conversation:${room}`]);
  const member = 9000 + (process.pid % 1000);
  const c = await cable(await mint(`m${member}`, { claims: { community_member_id: member } }), member);
  const f = await flow();
  try {
    const all = await ok('GET', '/api/channels?limit=10000');
    const of = (name) => all.channels.find((x) => x.channel === name);
    assert.deepEqual(of(`conversation:${room}`), { channel: `conversation:${room}`, subscribers: { service: 2 }, total: 2 });
    assert.deepEqual(of(`user:${subject}`).subscribers, { service: 1 });
    assert.deepEqual(of(`notification-channel-${member}`).subscribers, { cable: 1 });
    assert.deepEqual(of(`thread:${f.threadId}`).subscribers, { flow: 1 });
    const names = all.channels.map((x) => x.channel);
    assert.deepEqual(names, [...names].sort());

    const pre = await ok('GET', `/api/channels?prefix=conversation:${room}`);
    assert.deepEqual(pre.channels.map((x) => x.channel), [`conversation:${room}`]);
    const onlyCable = await ok('GET', '/api/channels?api=cable&limit=10000');
    assert.ok(onlyCable.channels.every((x) => Object.keys(x.subscribers).join() === 'cable'));
    const p1 = await ok('GET', '/api/channels?limit=1');
    assert.equal(p1.count, 1);
    assert.equal(p1.next, p1.channels[0].channel);
    const p2 = await ok('GET', `/api/channels?limit=1&after=${encodeURIComponent(p1.next)}`);
    assert.equal(p2.channels[0].channel, names[1]);
    // Pages of one: each worker's walk keeps at most two channels at once, and the counts stay whole.
    const paged = [];
    for (let after = null, i = 0; i < 10000; i++) {
      const pg = await ok('GET', `/api/channels?limit=1${after ? `&after=${encodeURIComponent(after)}` : ''}`);
      paged.push(...pg.channels);
      if (!pg.next) break;
      after = pg.next;
    }
    for (const name of [`conversation:${room}`, `user:${subject}`, `notification-channel-${member}`, `thread:${f.threadId}`])
      assert.deepEqual(paged.find((x) => x.channel === name), of(name));
    await bad('GET', '/api/channels?limit=abc', undefined, 'limit');
    await bad('GET', '/api/channels?api=x', undefined, 'api');
  } finally {
    for (const x of [b1, b2, c, f]) x.close();
  }
});

// ------------------------------------------------------------------ targeting

test('POST /api/send reaches exactly the targeted connections (subject, member, thread, api), on both workers', T, async () => {
  const alice = unique('alice');
  const bob = unique('bob');
  const aliceToken = await mint(alice);
  const [a0, a1] = await onBothWorkers(() => service(aliceToken));
  const bb = await service(await mint(bob));
  const m = 10000 + (process.pid % 1000);
  const cm = await cable(await mint(`m${m}`, { claims: { community_member_id: m } }), m);
  const cn = await cable(await mint(`n${m + 1}`, { claims: { community_member_id: m + 1 } }), m + 1);
  const f = await flow();
  const others = [bb, cm, cn, f];
  try {
    // To a subject: both of alice's connections (one per worker), in API B's envelope.
    let r = await ok('POST', '/api/send', { to: { subject: alice }, event: 'notification', data: { n: 1 } });
    assert.equal(r.matched, 2);
    assert.equal(r.sent, 2);
    assert.deepEqual(r.ids.sort(), [a0.record.id, a1.record.id].sort());
    for (const a of [a0, a1]) {
      const v = await a.next();
      assert.equal(v.type, 'notification');
      assert.deepEqual(v.data, { n: 1 });
      assert.match(v.timestamp, /^\d{4}-\d\d-\d\dT/);
      await a.barrier();
    }
    for (const o of others) await o.barrier();

    // To a member (a string of digits names it too), through each of its subscriptions (the
    // NotificationChannel, and the room of the barrier above): the identifier, nested.
    r = await ok('POST', '/api/send', { to: { member: String(m) }, event: 'new_notification', data: { id: 5 } });
    assert.deepEqual([r.matched, r.sent], [1, 1]);
    const each = [];
    for (let i = 0; i < 2; i++) each.push(await cm.next((x) => !isPing(x), { skip: isPing }));
    assert.deepEqual(each[0], { identifier: cm.identifier, message: { event: 'new_notification', data: { id: 5 } } });
    assert.deepEqual(each[1].message, { event: 'new_notification', data: { id: 5 } });
    assert.match(each[1].identifier, /barrier/);
    for (const o of [a0, a1, bb, cm, cn, f]) await o.barrier();
    // With a channel (the stream), only through that subscription.
    r = await ok('POST', '/api/send', { to: { member: m }, channel: `notification-channel-${m}`, event: 'only' });
    assert.equal(r.sent, 1);
    const v = await cm.next((x) => !isPing(x), { skip: isPing });
    assert.deepEqual(v, { identifier: cm.identifier, message: { event: 'only', data: {} } });
    await cm.barrier();
    // A channel the connection is not on: matched, not sent.
    r = await ok('POST', '/api/send', { to: { subject: bob }, channel: 'conversation:elsewhere', event: 'x' });
    assert.deepEqual([r.matched, r.sent], [1, 0]);
    for (const o of [a0, a1, bb, cm, cn, f]) await o.barrier();

    // To a Flow thread: as a publish to the thread (a server type it names).
    r = await ok('POST', '/api/send', { to: { thread: f.threadId }, event: 'agent.typing', data: { threadId: f.threadId } });
    assert.equal(r.sent, 1);
    assert.deepEqual(await f.next(), { type: 'agent.typing', payload: { threadId: f.threadId } });

    // To every connection of an API: raw text to all cable clients (ours among them).
    r = await ok('POST', '/api/send', { to: { api: 'cable' }, text: 'raw to cable' });
    assert.ok(r.sent >= 2);
    for (const c of [cm, cn]) assert.equal(await c.next((x) => x === 'raw to cable', { skip: isPing }), 'raw to cable');
    for (const o of [a0, a1, bb, f]) await o.barrier();

    // Nothing matches: 200, matched 0.
    r = await ok('POST', '/api/send', { to: { subject: unique('nobody') }, text: 'x' });
    assert.deepEqual([r.matched, r.sent, r.ids], [0, 0, []]);
  } finally {
    for (const x of [a0, a1, ...others]) x.close();
  }
});

test('POST /api/connections/{id}/send: text, json, binary and event to one connection only', T, async () => {
  const subject = unique('one');
  const token = await mint(subject);
  const x = await service(token);
  const y = await service(token); // same subject, never targeted
  const id = (await recordOf(x)).id;
  try {
    let r = await ok('POST', `/api/connections/${id}/send`, { text: 'plain \u00e9 text' });
    assert.deepEqual([r.matched, r.sent, r.ids], [1, 1, [id]]);
    assert.deepEqual(await x.raw(), { data: 'plain \u00e9 text', isBinary: false });
    await ok('POST', `/api/connections/${id}/send`, { json: { type: 'custom', deep: [1, { a: null }] } });
    assert.deepEqual(await x.next(), { type: 'custom', deep: [1, { a: null }] });
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    await ok('POST', `/api/connections/${id}/send`, { binary: bytes.toString('base64') });
    const bin = await x.raw();
    assert.equal(bin.isBinary, true);
    assert.deepEqual(Buffer.from(bin.data), bytes);
    await ok('POST', `/api/connections/${id}/send`, { event: 'notification' });
    const ev = await x.next();
    assert.deepEqual([ev.type, ev.data], ['notification', {}]);
    await y.barrier();
    await x.barrier();

    const p = `/api/connections/${id}/send`;
    await bad('POST', p, {}, '(body)');
    await bad('POST', p, { text: 'a', json: 1 }, '(body)');
    await bad('POST', p, { text: 5 }, 'text');
    await bad('POST', p, { binary: 'not base64!' }, 'binary');
    await bad('POST', p, { event: '' }, 'event');
    await bad('POST', p, { event: 'e', data: [1] }, 'data');
    await bad('POST', p, { text: 'a', data: {} }, 'data');
    await bad('POST', p, { to: { subject }, text: 'a' }, 'to');
    await bad('POST', p, 'not json', '(body)');
    await bad('POST', '/api/connections/999999999/send', { text: 'a' }, 'id', 404);
    await bad('POST', '/api/send', { text: 'a' }, 'to');
    await bad('POST', '/api/send', { to: {}, text: 'a' }, 'to');
    await bad('POST', '/api/send', { to: { api: 'nope' }, text: 'a' }, 'to.api');
    await bad('POST', '/api/send', { to: { member: 'x' }, text: 'a' }, 'to.member');
    await bad('POST', '/api/send', { to: { who: 1 }, text: 'a' }, 'to.who');
    await bad('POST', '/api/send', { to: { id: -1 }, text: 'a' }, 'to.id');
    assert.equal((await api('GET', p)).status, 405);
    assert.equal((await api('POST', '/api/connections/')).status, 404);
    await bad('POST', '/api/connections/x1/send', { text: 'a' }, 'id');
    await bad('POST', p, { text: 'a', channel: 'c' }, 'channel');
    await bad('POST', p, { event: 'e', channel: 5 }, 'channel');
  } finally {
    x.close();
    y.close();
  }
});

// ------------------------------------------------------------------ close and kick

test('close with a code: the client gets that code and reason; on /cable a disconnect first', T, async () => {
  const subject = unique('closer');
  const token = await mint(subject);
  for (const code of [4001, 1000, 1012, 3000]) {
    const x = await service(token);
    const y = await service(token);
    const id = (await recordOf(x)).id;
    const r = await ok('POST', `/api/connections/${id}/close`, { code, reason: `bye ${code}` });
    assert.deepEqual([r.matched, r.closed, r.ids], [1, 1, [id]]);
    assert.deepEqual(await x.whenClosed(), { code, reason: `bye ${code}` });
    await y.barrier(); // the other connection of the subject is untouched
    y.close();
  }
  // No body: 1000 without a reason.
  const z = await service(token);
  await ok('POST', `/api/connections/${(await recordOf(z)).id}/close`);
  assert.deepEqual(await z.whenClosed(), { code: 1000, reason: '' });

  const m = 11000 + (process.pid % 1000);
  const ct = await mint(`m${m}`, { claims: { community_member_id: m } });
  const c1 = await cable(ct, m);
  const c2 = await cable(ct, m);
  const other = await cable(await mint('o', { claims: { community_member_id: m + 1 } }), m + 1);
  const id1 = (await recordOf(c1)).id;
  await ok('POST', `/api/connections/${id1}/close`, { code: 1000, reason: 'server_restart', reconnect: true });
  assert.deepEqual(await c1.next((v) => v.type === 'disconnect', { skip: isPing }), { type: 'disconnect', reason: 'server_restart', reconnect: true });
  assert.equal((await c1.whenClosed()).code, 1000);
  // /api/close by member: the member's other connection, with reconnect false and a code.
  const r = await ok('POST', '/api/close', { to: { member: m, api: 'cable' }, code: 4003, reconnect: false });
  assert.equal(r.closed, 1);
  assert.deepEqual(await c2.next((v) => v.type === 'disconnect', { skip: isPing }), { type: 'disconnect', reason: 'remote', reconnect: false });
  assert.equal((await c2.whenClosed()).code, 4003);
  await other.barrier();
  assert.equal(other.closed, null);
  other.close();

  const w = await service(token);
  const p = `/api/connections/${(await recordOf(w)).id}/close`;
  for (const code of [999, 1004, 1005, 1006, 1010, 1015, 2999, 5000, '1000']) await bad('POST', p, { code }, 'code');
  await bad('POST', p, { reason: 'x'.repeat(124) }, 'reason');
  await bad('POST', p, { reason: 7 }, 'reason');
  await bad('POST', p, { reconnect: 'yes' }, 'reconnect');
  await bad('POST', '/api/close', {}, 'to');
  await bad('POST', '/api/close', '{', '(body)');
  await w.barrier();
  w.close();
});

test('@rails/actioncable reconnects by itself after a kick with server_restart and reconnect:true, not with reconnect:false', T, async () => {
  if (typeof globalThis.addEventListener !== 'function') globalThis.addEventListener = () => {};
  if (typeof globalThis.removeEventListener !== 'function') globalThis.removeEventListener = () => {};
  const m = 12000 + (process.pid % 1000);
  const token = await mint(`m${m}`, { claims: { community_member_id: m } });
  ActionCable.adapters.WebSocket = class extends WebSocket {
    constructor(url, protocols) { super(url, protocols, { headers: { Authorization: `Bearer ${token}` } }); }
  };
  // The monitor's stale threshold (6 s by default, two missed pings of Rails' 3 s) scaled to the
  // 500 ms pings of this server: the reconnect comes within seconds, by the consumer's own logic.
  const saved = ActionCable.ConnectionMonitor.staleThreshold;
  ActionCable.ConnectionMonitor.staleThreshold = 2;
  const events = [];
  const consumer = ActionCable.createConsumer(`${srv.wsUrl}/cable`);
  try {
    consumer.subscriptions.create({ channel: 'NotificationChannel', community_member_id: m }, {
      connected(d) { events.push({ kind: 'connected', d }); },
      disconnected(d) { events.push({ kind: 'disconnected', d }); },
      rejected() { events.push({ kind: 'rejected' }); },
      received(d) { events.push({ kind: 'received', d }); },
    });
    consumer.connect();
    await waitFor(() => events.some((e) => e.kind === 'connected'), 10000, 'connected');
    const first = (await list(`?member=${m}`)).connections;
    assert.equal(first.length, 1);

    const r = await ok('POST', `/api/connections/${first[0].id}/close`, { reason: 'server_restart', reconnect: true });
    assert.equal(r.closed, 1);
    await waitFor(() => events.some((e) => e.kind === 'disconnected'), 10000, 'disconnected');
    assert.deepEqual(events.find((e) => e.kind === 'disconnected').d, { willAttemptReconnect: true });
    await waitFor(() => events.filter((e) => e.kind === 'connected').length === 2, 30000, 'connected again');
    assert.deepEqual(events.filter((e) => e.kind === 'connected')[1].d, { reconnected: true });
    const second = (await list(`?member=${m}`)).connections;
    assert.equal(second.length, 1);
    assert.notEqual(second[0].id, first[0].id, 'a new connection');
    // It works: an event sent to the member arrives on the new connection.
    await ok('POST', '/api/send', { to: { member: m }, event: 'new_notification', data: { after: 'reconnect' } });
    await waitFor(() => events.some((e) => e.kind === 'received'), 5000, 'received');
    assert.deepEqual(events.find((e) => e.kind === 'received').d, { event: 'new_notification', data: { after: 'reconnect' } });

    // reconnect:false: the consumer stops its monitor and stays away.
    events.length = 0;
    await ok('POST', '/api/close', { to: { member: m }, reason: 'unauthorized', reconnect: false });
    await waitFor(() => events.some((e) => e.kind === 'disconnected'), 10000, 'disconnected');
    assert.deepEqual(events.find((e) => e.kind === 'disconnected').d, { willAttemptReconnect: false });
    await sleep(6000); // three stale thresholds
    assert.deepEqual((await list(`?member=${m}`)).connections, []);
    assert.ok(!events.some((e) => e.kind === 'connected'));
  } finally {
    consumer.disconnect();
    ActionCable.ConnectionMonitor.staleThreshold = saved;
  }
});

// ------------------------------------------------------------------ reset

test('POST /api/reset answers ok (every capability registered clears its state); GET is 405', T, async () => {
  const r = await ok('POST', '/api/reset');
  assert.equal(r.ok, true);
  assert.equal(typeof r.reset, 'number');
  assert.equal((await api('GET', '/api/reset')).status, 405);
});
