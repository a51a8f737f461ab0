'use strict';
// The mock backend's faults (issue 15, README "Mock backend" → "Faults"), driven with real
// clients: `ws` on /echo, /api/ws, /text/moderation and Flow's /ws/<token>, the official
// @rails/actioncable client on /cable, and HTTP for the control endpoints.
//  - a moderation override is answered for its reference (WebSocket and HTTP), and only for it;
//    by text pattern (substring, glob), success:false, times;
//  - the next N cable subscriptions to a channel (identifier channel or queue) are rejected;
//  - every documented Flow server type reaches the thread's sockets in Flow's envelope;
//  - latency per API and direction (messages late, in order; control frames not delayed);
//  - drop per API and direction (whole messages; pings still answered);
//  - refusal of new connections with a status, the API's JSON error and Retry-After, for a while;
//  - bounds: mock.max_faults (409), delayed bytes per connection (1013), and their metrics;
//  - the gate: the API key (401), malformed input naming the field (400), mock.enabled off (404).
//
// Environment:
//   WSHUB_BIN   the binary under test (build-asan/wshubd for the sanitizer run)
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const ActionCable = require('@rails/actioncable');

const { start, SANITIZER } = require('./lib/server');
const { sleep, within, waitFor, httpRequest, parseMetrics } = require('./lib/util');

const SECRET = crypto.randomBytes(24).toString('hex');
const API_KEY = `faults-e2e-${crypto.randomBytes(8).toString('hex')}`;
const MOD_KEY = 'wshub-development-moderation-key';
const MAX_FAULTS = 12;
const CONN_DELAY_BYTES = 8192;
const T = { timeout: 30000 };

let srv;

before(async () => {
  srv = await start({
    env: {
      WSHUB_JWT_SECRET: SECRET, WSHUB_API_KEY: API_KEY, WSHUB_MOCK_MAX_FAULTS: String(MAX_FAULTS),
      WSHUB_MOCK_MAX_DELAYED_BYTES_PER_CONNECTION: String(CONN_DELAY_BYTES),
    },
  });
});

after(async () => {
  if (!srv) return;
  const exit = await srv.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, 'wshubd exits cleanly');
  assert.doesNotMatch(srv.log(), SANITIZER, 'no sanitizer report');
});

// ------------------------------------------------------------------ helpers

const b64u = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
function mint(claims) {
  const head = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
  return `${head}.${crypto.createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

const auth = { Authorization: `Bearer ${API_KEY}` };
const control = (method, p, body, headers = auth) => httpRequest(srv, { method, path: p, body, headers });

async function addFault(p, body) {
  const r = await control('POST', p, body);
  assert.equal(r.status, 200, `POST ${p} ${JSON.stringify(body)}: ${r.status} ${r.text}`);
  assert.equal(r.json.ok, true);
  assert.ok(Number.isInteger(r.json.fault.id), r.text);
  return r.json.fault;
}

async function clearFaults() {
  const r = await control('DELETE', '/api/faults');
  assert.equal(r.status, 200, r.text);
}

async function metrics() {
  return parseMetrics((await httpRequest(srv, { path: '/metrics' })).text);
}

// A `ws` client that keeps every message (parsed when JSON) with its arrival time.
class Client {
  constructor(url, opts = {}) {
    this.frames = [];
    this.waiters = new Set();
    this.closeInfo = null;
    this.ws = new WebSocket(url, opts.protocols || [], { headers: opts.headers || {} });
    this.ws.on('message', (data) => {
      const text = data.toString('utf8');
      let msg = text;
      try { msg = JSON.parse(text); } catch { /* text */ }
      this.frames.push({ msg, at: Date.now() });
      this.wake();
    });
    this.ws.on('error', () => {});
    this.ws.on('close', (code, reason) => { this.closeInfo = { code, reason: reason.toString() }; this.wake(); });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('unexpected-response', (req, res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => reject(Object.assign(new Error(`refused ${res.statusCode}`),
          { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() })));
      });
      this.ws.once('error', reject);
    });
    this.opened.catch(() => {});
  }

  wake() { for (const w of [...this.waiters]) w(); }

  // Resolves the first frame from index `from` on that matches pred: { msg, at, index }.
  waitFor(pred, what, { from = 0, timeout = 5000 } = {}) {
    return within(new Promise((resolve, reject) => {
      const check = () => {
        for (let i = from; i < this.frames.length; i++) {
          if (pred(this.frames[i].msg)) { this.waiters.delete(check); return resolve({ ...this.frames[i], index: i }); }
        }
        if (this.closeInfo) { this.waiters.delete(check); reject(new Error(`closed ${JSON.stringify(this.closeInfo)} waiting for ${what}`)); }
        return undefined;
      };
      this.waiters.add(check);
      check();
    }), timeout, `${what}; frames: ${JSON.stringify(this.frames.map((f) => f.msg)).slice(0, 800)}`);
  }

  closed(timeout = 5000) {
    return within(new Promise((resolve) => {
      if (this.closeInfo) resolve(this.closeInfo);
      else this.ws.once('close', () => resolve(this.closeInfo));
    }), timeout, 'the close');
  }

  send(v) { this.ws.send(typeof v === 'string' ? v : JSON.stringify(v)); }
  close() { this.ws.terminate(); }
}

async function open(p, opts) {
  const c = new Client(`${srv.wsUrl}${p}`, opts);
  await within(c.opened, 5000, `open ${p}`);
  return c;
}

// ------------------------------------------------------------------ the gate

test('control endpoints: the API key, malformed input named by field, unknown kinds', T, async () => {
  const noKey = await control('GET', '/api/faults', undefined, {});
  assert.equal(noKey.status, 401);
  const wrongKey = await control('POST', '/api/faults/latency', { api: 'echo', direction: 'out', ms: 10 },
    { Authorization: 'Bearer nope' });
  assert.equal(wrongKey.status, 401);
  const bad = [
    ['/api/faults/latency', { direction: 'out', ms: 10 }, 'api'],
    ['/api/faults/latency', { api: 'smtp', direction: 'out', ms: 10 }, 'api'],
    ['/api/faults/latency', { api: 'tap', direction: 'out', ms: 10 }, 'api'],
    ['/api/faults/refuse', { api: 'tap', for_ms: 100 }, 'api'],
    ['/api/faults/latency', { api: 'echo', direction: 'sideways', ms: 10 }, 'direction'],
    ['/api/faults/latency', { api: 'echo', direction: 'out' }, 'ms'],
    ['/api/faults/latency', { api: 'echo', direction: 'out', ms: 10, jitter_ms: -1 }, 'jitter_ms'],
    ['/api/faults/drop', { api: 'echo', direction: 'in', rate: 0 }, 'rate'],
    ['/api/faults/drop', { api: 'echo', direction: 'in', rate: '0.5' }, 'rate'],
    ['/api/faults/refuse', { api: 'cable', status: 200, for_ms: 100 }, 'status'],
    ['/api/faults/refuse', { api: 'cable', status: 503 }, 'for_ms'],
    ['/api/faults/cable/reject', { count: 2 }, 'channel'],
    ['/api/faults/cable/reject', { channel: 'ChatRoomChannel', count: 0 }, 'count'],
    ['/api/faults/moderation', { verdict: 'delete' }, 'reference'],
    ['/api/faults/moderation', { reference: 'r' }, 'verdict'],
    ['/api/faults/moderation', { reference: 'r', verdict: 'ban' }, 'verdict'],
    ['/api/faults/moderation', { reference: 'r', verdict: { action: 'flag', score: 2 } }, 'verdict.score'],
    ['/api/faults/moderation', { reference: 'r', scores: { engine9: {} } }, 'scores.engine9'],
    ['/api/faults/moderation', { reference: 'r', success: true }, 'success'],
    ['/api/faults/moderation', { reference: {}, verdict: 'pass' }, 'reference'],
    ['/api/faults/moderation', { pattern: '', verdict: 'pass' }, 'pattern'],
    ['/api/faults/moderation', { reference: 'r', verdict: 'pass', times: 0 }, 'times'],
    ['/api/flow/threads/t-1/events', { type: 'bot.says' }, 'type'],
    ['/api/flow/threads/t-1/events', { type: 'agent.typing', payload: [] }, 'payload'],
    ['/api/faults/latency', '[1,2]', '(body)'],
    ['/api/faults/latency', '{"api":', '(body)'],
  ];
  for (const [p, body, field] of bad) {
    const r = await control('POST', p, body);
    assert.equal(r.status, 400, `${p} ${JSON.stringify(body)}: ${r.status} ${r.text}`);
    assert.equal(r.json.ok, false);
    assert.equal(r.json.field, field, `${p} ${JSON.stringify(body)}: ${r.text}`);
    assert.equal(typeof r.json.message, 'string');
  }
  assert.equal((await control('POST', '/api/faults/earthquake', {})).status, 404);
  assert.equal((await control('POST', '/api/flow/threads/t-1/nothing', { type: 'agent.typing' })).status, 404);
  assert.equal((await control('DELETE', '/api/faults/999999')).status, 404);
  assert.equal((await control('PUT', '/api/faults')).status, 405);
  assert.deepEqual((await control('GET', '/api/faults')).json, { ok: true, faults: [] }, 'nothing was set by bad input');
});

test('the list, removal by id, clearing, mock.max_faults (409) and the gauge', T, async () => {
  const a = await addFault('/api/faults/latency', { api: 'echo', direction: 'out', ms: 100, jitter_ms: 10 });
  assert.deepEqual(a, { id: a.id, kind: 'latency', hits: 0, api: 'echo', direction: 'out', ms: 100, jitter_ms: 10 });
  // The same API and direction: replaced, not added.
  const b = await addFault('/api/faults/latency', { api: 'echo', direction: 'out', ms: 200 });
  let list = (await control('GET', '/api/faults')).json.faults;
  assert.deepEqual(list.map((f) => [f.id, f.ms]), [[b.id, 200]]);
  for (let i = 1; i < MAX_FAULTS; i++) await addFault('/api/faults/cable/reject', { channel: `q-${i}` });
  const full = await control('POST', '/api/faults/cable/reject', { channel: 'one-too-many' });
  assert.equal(full.status, 409, full.text);
  assert.equal(full.json.error, 'too_many_faults');
  assert.equal((await metrics()).wshub_mock_faults, MAX_FAULTS);
  const del = await control('DELETE', `/api/faults/${b.id}`);
  assert.deepEqual(del.json, { ok: true, removed: b.id });
  list = (await control('GET', '/api/faults')).json.faults;
  assert.equal(list.length, MAX_FAULTS - 1);
  assert.ok(!list.some((f) => f.id === b.id));
  const cleared = await control('POST', '/api/faults/clear');
  assert.deepEqual(cleared.json, { ok: true, cleared: MAX_FAULTS - 1 });
  assert.equal((await metrics()).wshub_mock_faults, 0);
});

// ------------------------------------------------------------------ moderation

test('moderation: an override is answered for its reference, through the normal answer path', T, async () => {
  await clearFaults();
  await addFault('/api/faults/moderation', {
    reference: 'comment-2', verdict: { action: 'delete', score: 0.97 },
    scores: { engine1: { baseline: 0.01 }, patches: { curseWordOverride: true } },
  });
  const c = await open('/text/moderation', { headers: { 'x-chatsight-api-auth': MOD_KEY } });
  for (const ref of ['comment-1', 'comment-2', 'comment-3']) c.send({ sample: 'have a lovely day', reference: ref });
  const byRef = {};
  for (const ref of ['comment-1', 'comment-2', 'comment-3']) {
    byRef[ref] = (await c.waitFor((m) => m.response && m.response.metadata.self_reference === ref, ref)).msg;
  }
  const o = byRef['comment-2'];
  assert.equal(o.api, 'chatsight-lang-text');
  assert.equal(o.success, true);
  assert.deepEqual(o.response.suggestedAction, ['delete', 0.97]);
  assert.equal(o.response.engine1.baseline, 0.01);
  assert.equal(o.response.patches.curseWordOverride, true);
  // The rest of the documented shape is the scored answer's.
  const plain = byRef['comment-1'];
  assert.deepEqual(Object.keys(o), Object.keys(plain));
  assert.deepEqual(Object.keys(o.response), Object.keys(plain.response));
  assert.deepEqual(o.response.engine2, plain.response.engine2);
  assert.equal(o.response.engine1.raceInvocation, plain.response.engine1.raceInvocation);
  assert.equal(typeof o.response.metadata.uuid, 'string');
  // Only its reference: the others are scored as usual (and the same as each other).
  assert.deepEqual(plain.response.suggestedAction, byRef['comment-3'].response.suggestedAction);
  assert.equal(plain.response.suggestedAction[0], 'pass');
  assert.equal(plain.response.patches.curseWordOverride, false);

  // Over HTTP too, and the hits are counted.
  const h = await httpRequest(srv, { method: 'POST', path: '/text/moderation', headers: { 'x-chatsight-api-auth': MOD_KEY },
    body: { sample: 'anything at all', reference: 'comment-2' } });
  assert.equal(h.status, 200, h.text);
  assert.deepEqual(h.json.response.suggestedAction, ['delete', 0.97]);
  assert.equal(h.json.response.metadata.self_reference, 'comment-2');
  const [f] = (await control('GET', '/api/faults')).json.faults;
  assert.equal(f.hits, 2);
  assert.equal(f.remaining, null);
  c.close();
});

test('moderation: by text pattern (substring, glob), success:false, times', T, async () => {
  await clearFaults();
  await addFault('/api/faults/moderation', { pattern: 'secret sauce', success: false, message: 'engine timeout', times: 1 });
  await addFault('/api/faults/moderation', { pattern: 'order #*', verdict: 'flag' });
  const c = await open('/text/moderation', { headers: { 'x-chatsight-api-auth': MOD_KEY } });
  c.send({ sample: 'the secret sauce is ketchup', reference: 1 });
  const err = (await c.waitFor((m) => m.response && m.response.metadata.self_reference === 1, 'ref 1')).msg;
  assert.deepEqual(err, { api: 'chatsight-lang-text', success: false, error: { message: 'engine timeout' },
    response: { metadata: { self_reference: 1 } } });
  // times: 1 — used up, removed.
  c.send({ sample: 'the secret sauce is ketchup', reference: 2 });
  const again = (await c.waitFor((m) => m.response && m.response.metadata.self_reference === 2, 'ref 2')).msg;
  assert.equal(again.success, true);
  // A glob must match the whole sample: "order #12" matches, "my order #12" does not.
  c.send({ sample: 'order #12 shipped', reference: 'g1' });
  c.send({ sample: 'my order #12 shipped', reference: 'g2' });
  const g1 = (await c.waitFor((m) => m.response && m.response.metadata.self_reference === 'g1', 'g1')).msg;
  const g2 = (await c.waitFor((m) => m.response && m.response.metadata.self_reference === 'g2', 'g2')).msg;
  assert.equal(g1.response.suggestedAction[0], 'flag');
  assert.equal(g1.response.suggestedAction[1], 1, 'a verdict without a score: 1 for flag');
  assert.equal(g2.response.suggestedAction[0], 'pass');
  const list = (await control('GET', '/api/faults')).json.faults;
  assert.deepEqual(list.map((f) => f.pattern), ['order #*']);
  // Over HTTP a failure answers as the server's own internal errors: 500 with the error body.
  await addFault('/api/faults/moderation', { reference: 'http-fail', success: false });
  const h = await httpRequest(srv, { method: 'POST', path: '/text/moderation', headers: { 'x-chatsight-api-auth': MOD_KEY },
    body: { sample: 'x', reference: 'http-fail' } });
  assert.equal(h.status, 500);
  assert.equal(h.json.success, false);
  assert.equal(h.json.response.metadata.self_reference, 'http-fail');
  c.close();
  await clearFaults();
});

// ------------------------------------------------------------------ cable

if (typeof globalThis.addEventListener !== 'function') globalThis.addEventListener = () => {};
if (typeof globalThis.removeEventListener !== 'function') globalThis.removeEventListener = () => {};
let cableHeaders = {};
class HeaderWebSocket extends WebSocket {
  constructor(url, protocols) { super(url, protocols, { headers: cableHeaders }); }
}
ActionCable.adapters.WebSocket = HeaderWebSocket;

function railsSubscribe(consumer, params) {
  return new Promise((resolve) => {
    consumer.subscriptions.create(params, {
      connected() { resolve('connected'); },
      rejected() { resolve('rejected'); },
    });
  });
}

test('cable: the next N subscriptions to a channel are rejected (@rails/actioncable)', T, async () => {
  await clearFaults();
  const f = await addFault('/api/faults/cable/reject', { channel: 'ChatRoomChannel', count: 2 });
  assert.equal(f.remaining, 2);
  cableHeaders = { Authorization: `Bearer ${mint({ community_member_id: 42 })}` };
  const consumer = ActionCable.createConsumer(`${srv.wsUrl}/cable`);
  consumer.connect();
  try {
    const ident = { channel: 'ChatRoomChannel', community_member_id: 42 };
    assert.equal(await within(railsSubscribe(consumer, ident), 5000, 'first'), 'rejected');
    assert.equal(await within(railsSubscribe(consumer, { ...ident, n: 2 }), 5000, 'second'), 'rejected');
    assert.equal(await within(railsSubscribe(consumer, { ...ident, n: 3 }), 5000, 'third'), 'connected');
    // Another channel was never affected.
    assert.equal(await within(railsSubscribe(consumer, { channel: 'NotificationChannel', community_member_id: 42 }),
      5000, 'notifications'), 'connected');
    assert.deepEqual((await control('GET', '/api/faults')).json.faults, [], 'used up: removed');
  } finally {
    consumer.disconnect();
  }
});

test('cable: a fault may name the queue; raw frames are exactly reject_subscription', T, async () => {
  await clearFaults();
  await addFault('/api/faults/cable/reject', { channel: 'notification-channel-7' });
  const c = await open('/cable', { headers: { Authorization: `Bearer ${mint({ community_member_id: 7 })}` } });
  await c.waitFor((m) => m.type === 'welcome', 'welcome');
  const identifier = JSON.stringify({ channel: 'NotificationChannel', community_member_id: 7 });
  c.send({ command: 'subscribe', identifier });
  const r = await c.waitFor((m) => m.identifier === identifier, 'the reply');
  assert.deepEqual(r.msg, { identifier, type: 'reject_subscription' });
  c.send({ command: 'subscribe', identifier });
  const r2 = await c.waitFor((m) => m.identifier === identifier, 'the second reply', { from: r.index + 1 });
  assert.deepEqual(r2.msg, { identifier, type: 'confirm_subscription' });
  c.close();
});

// ------------------------------------------------------------------ Flow

async function flowSocket(threadId) {
  const r = await httpRequest(srv, { path: '/socket.info', headers: { 'x-flowai-clientid': 'faults-e2e',
    'x-flowai-sessionid': `s-${crypto.randomUUID()}`, 'x-flowai-threadid': threadId } });
  assert.equal(r.status, 200, r.text);
  const c = new Client(r.json.payload.endpoint);
  await within(c.opened, 5000, 'flow socket');
  return c;
}

test('Flow: every documented server event type reaches the thread, in Flow\'s envelope', T, async () => {
  await clearFaults();
  const thread = `thread-${crypto.randomUUID()}`;
  const a = await flowSocket(thread);
  const b = await flowSocket(thread);
  const other = await flowSocket(`other-${crypto.randomUUID()}`);
  const events = [
    [{ type: 'agent.typing', payload: { threadId: thread } }, { type: 'agent.typing', payload: { threadId: thread } }],
    [{ type: 'activities.created', payload: { threadId: thread, activities: [{ type: 'handover' }] } },
      { type: 'activities.created', payload: { threadId: thread, activities: [{ type: 'handover' }] } }],
    [{ type: 'interruption.occurred', payload: { threadId: thread, reason: 'agent took over' } },
      { type: 'interruption.occurred', payload: { threadId: thread, reason: 'agent took over' } }],
    [{ type: 'error', message: 'the bot is down' }, { type: 'error', message: 'the bot is down' }],
    [{ type: 'message.received', payload: { text: 'hello from the mock' } }, null],
  ];
  let from = 0;
  for (const [body, want] of events) {
    const r = await control('POST', `/api/flow/threads/${encodeURIComponent(thread)}/events`, body);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.delivered, 2, `${body.type}: two sockets of the thread (${r.text})`);
    for (const c of [a, b]) {
      const got = await c.waitFor((m) => m.type === body.type, body.type, { from });
      if (want) assert.deepEqual(got.msg, want);
    }
    from++;
  }
  const msg = a.frames[4].msg;
  assert.equal(msg.payload.threadId, thread);
  assert.equal(msg.payload.messages[0].responses[0].payload.text, 'hello from the mock');
  assert.deepEqual(a.frames.map((f) => f.msg.type), events.map(([e]) => e.type), 'in order, nothing else');
  await sleep(100);
  assert.equal(other.frames.length, 0, 'another thread gets nothing');
  // message.received is kept in the thread's history, as a publish is.
  const h = await httpRequest(srv, { path: '/thread.history', headers: { 'x-flowai-clientid': 'faults-e2e', 'x-flowai-threadid': thread } });
  assert.equal(h.status, 200, h.text);
  assert.deepEqual(h.json.payload.history.map((e) => e.type), ['message.received']);
  for (const c of [a, b, other]) c.close();
});

// ------------------------------------------------------------------ latency and drop

test('latency out (echo): every message late by ms ± jitter, in order; pings not delayed', T, async () => {
  await clearFaults();
  await addFault('/api/faults/latency', { api: 'echo', direction: 'out', ms: 400, jitter_ms: 150 });
  const c = await open('/echo');
  const sent = Date.now();
  for (let i = 0; i < 20; i++) c.send(`m${i}`);
  const pong = within(new Promise((resolve) => c.ws.once('pong', () => resolve(Date.now()))), 5000, 'pong');
  c.ws.ping();
  const pongAt = await pong;
  assert.ok(pongAt - sent < 200, `the pong is not delayed (${pongAt - sent} ms)`);
  await c.waitFor((m) => m === 'm19', 'the last echo');
  assert.deepEqual(c.frames.map((f) => f.msg), Array.from({ length: 20 }, (_, i) => `m${i}`), 'in order');
  const first = c.frames[0].at - sent;
  assert.ok(first >= 240, `the first echo is late (${first} ms)`);
  assert.ok(first < 1500, `but not too late (${first} ms)`);
  // Cleared: the next message is on time.
  await clearFaults();
  const t0 = Date.now();
  c.send('now');
  const r = await c.waitFor((m) => m === 'now', 'now');
  assert.ok(r.at - t0 < 200, `no latency once cleared (${r.at - t0} ms)`);
  c.close();
});

test('latency in (service): the dialect sees the client\'s messages late, in order', T, async () => {
  await clearFaults();
  await addFault('/api/faults/latency', { api: 'service', direction: 'in', ms: 300 });
  const c = await open(`/api/ws?token=${mint({ sub: 'user-1' })}`);
  const t0 = Date.now();
  for (let i = 0; i < 5; i++) c.send({ type: 'subscribe', data: { channel: `conversation:c${i}` } });
  await c.waitFor((m) => m.type === 'subscribed' && m.data.channel === 'conversation:c4', 'the last subscribed');
  const firstAt = c.frames.find((f) => f.msg.type === 'subscribed').at;
  assert.ok(firstAt - t0 >= 240, `the first reply is late (${firstAt - t0} ms)`);
  assert.deepEqual(c.frames.filter((f) => f.msg.type === 'subscribed').map((f) => f.msg.data.channel),
    ['conversation:c0', 'conversation:c1', 'conversation:c2', 'conversation:c3', 'conversation:c4']);
  const hits = (await control('GET', '/api/faults')).json.faults[0].hits;
  assert.equal(hits, 5);
  c.close();
  await clearFaults();
});

test('latency out (service): fan-out frames and replies are held alike, in the order they were sent', T, async () => {
  await clearFaults();
  const c = await open(`/api/ws?token=${mint({ sub: 'user-4' })}`);
  c.send({ type: 'subscribe', data: { channel: 'conversation:late' } });
  await c.waitFor((m) => m.type === 'subscribed', 'subscribed');
  await addFault('/api/faults/latency', { api: 'service', direction: 'out', ms: 300 });
  const t0 = Date.now();
  const pub = await control('POST', '/api/publish', { channel: 'conversation:late', event: 'status_update',
    data: { entity_type: 'task', entity_id: 't-1', status: 'done' } });
  assert.equal(pub.status, 200, pub.text);
  c.send({ type: 'ping' });
  const pong = await c.waitFor((m) => m.type === 'pong', 'pong');
  const ev = await c.waitFor((m) => m.type === 'status_update', 'the event');
  assert.ok(ev.index < pong.index, 'the event was queued first, and comes first');
  assert.ok(ev.at - t0 >= 240, `the fan-out frame is late (${ev.at - t0} ms)`);
  assert.ok(pong.at - t0 >= 240, `the reply is late (${pong.at - t0} ms)`);
  await clearFaults();
  c.close();
});

test('latency out: a close sends what is held first (cable\'s disconnect before its close 1000)', T, async () => {
  await clearFaults();
  await addFault('/api/faults/latency', { api: 'cable', direction: 'out', ms: 2000 });
  const c = await open('/cable', { headers: { Authorization: 'Bearer not-a-token' } });
  const info = await c.closed(1500);
  assert.equal(info.code, 1000);
  assert.deepEqual(c.frames.map((f) => f.msg), [{ type: 'disconnect', reason: 'unauthorized', reconnect: false }]);
  await clearFaults();
});

test('drop: whole messages lost per API and direction; control frames never', T, async () => {
  await clearFaults();
  await addFault('/api/faults/drop', { api: 'echo', direction: 'out', rate: 1 });
  const c = await open('/echo');
  c.send('lost');
  const pong = within(new Promise((resolve) => c.ws.once('pong', resolve)), 5000, 'pong');
  c.ws.ping('still here');
  await pong;
  // A partial drop: some messages arrive, whole and in order.
  await addFault('/api/faults/drop', { api: 'echo', direction: 'out', rate: 0.5 });
  for (let i = 0; i < 200; i++) c.send(`n${String(i).padStart(3, '0')}`);
  await sleep(600);
  const got = c.frames.map((f) => f.msg);
  assert.ok(!got.includes('lost'), 'rate 1 dropped everything');
  assert.ok(got.length > 20 && got.length < 180, `about half arrived (${got.length})`);
  assert.deepEqual([...got].sort(), got, 'in order');
  assert.ok(got.every((m) => /^n\d{3}$/.test(m)), 'whole messages only');
  // In: the dialect never sees a dropped message (service: no reply to the ping).
  await clearFaults();
  await addFault('/api/faults/drop', { api: 'service', direction: 'in', rate: 1 });
  const s = await open(`/api/ws?token=${mint({ sub: 'user-2' })}`);
  s.send({ type: 'ping' });
  await sleep(300);
  assert.deepEqual(s.frames, [], 'no pong: the ping was dropped on its way in');
  await clearFaults();
  s.send({ type: 'ping' });
  await s.waitFor((m) => m.type === 'pong', 'pong once cleared');
  c.close();
  s.close();
});

test('bounds: delayed bytes past mock.max_delayed_bytes_per_connection close with 1013, counted', T, async () => {
  await clearFaults();
  const before = await metrics();
  await addFault('/api/faults/latency', { api: 'echo', direction: 'in', ms: 5000 });
  const c = await open('/echo');
  const chunk = 'x'.repeat(1000);
  for (let i = 0; i < 12; i++) c.send(chunk);
  const info = await c.closed(5000);
  assert.equal(info.code, 1013);
  assert.match(info.reason, /delayed/);
  const m = await waitFor(async () => {
    const v = await metrics();
    return v.wshub_mock_delayed_bytes === 0 && v;
  }, 3000, 'the held bytes released');
  assert.equal(m.wshub_mock_delay_overflows_total, (before.wshub_mock_delay_overflows_total || 0) + 1);
  await clearFaults();
});

// ------------------------------------------------------------------ refusal

test('refuse: new connections get the status, the API\'s JSON error and Retry-After, for a while', T, async () => {
  await clearFaults();
  const live = await open('/echo'); // connections already open are not touched
  await addFault('/api/faults/refuse', { api: 'service', status: 503, for_ms: 1500 });
  await addFault('/api/faults/refuse', { api: 'flow', status: 429, for_ms: 1500 });
  await addFault('/api/faults/refuse', { api: 'moderation', status: 502, for_ms: 1500 });
  const tok = mint({ sub: 'user-3' });
  const svc = new Client(`${srv.wsUrl}/api/ws?token=${tok}`);
  const e = await svc.opened.then(() => null, (err) => err);
  assert.ok(e && e.status === 503, `refused: ${e && e.message}`);
  assert.equal(e.headers['retry-after'], '2');
  const body = JSON.parse(e.body);
  assert.equal(body.type, 'error');
  assert.equal(body.data.code, 'internal_error');
  assert.match(body.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const mod = new Client(`${srv.wsUrl}/text/moderation`, { headers: { 'x-chatsight-api-auth': MOD_KEY } });
  const me = await mod.opened.then(() => null, (err) => err);
  assert.equal(me.status, 502);
  assert.equal(JSON.parse(me.body).success, false);
  // Flow refuses from the first step, socket.info.
  const info = await httpRequest(srv, { path: '/socket.info?clientId=x&sessionId=y' });
  assert.equal(info.status, 429);
  assert.equal(info.json.status, 'error');
  assert.equal(typeof info.json.payload.message, 'string');
  assert.ok(Number(info.headers['retry-after']) >= 1);
  // Other APIs are not refused, nor the one already open.
  const echo = await open('/echo');
  echo.send('hi');
  await echo.waitFor((m) => m === 'hi', 'echo');
  live.send('still');
  await live.waitFor((m) => m === 'still', 'the open connection');
  // For a while: then served again, and the expired refusals leave the list.
  await sleep(1600);
  const again = await open(`/api/ws?token=${tok}`);
  again.send({ type: 'ping' });
  await again.waitFor((m) => m.type === 'pong', 'pong');
  assert.deepEqual((await control('GET', '/api/faults')).json.faults, []);
  for (const c of [live, echo, again]) c.close();
});

test('mock.enabled off: the endpoints answer 404 and nothing applies', T, async () => {
  const off = await start({ config: {}, env: { WSHUB_API_KEY: API_KEY } });
  try {
    const r = await httpRequest(off, { method: 'POST', path: '/api/faults/refuse', headers: auth,
      body: { api: 'echo', status: 503, for_ms: 10000 } });
    assert.equal(r.status, 404, r.text);
    const f = await httpRequest(off, { method: 'POST', path: '/api/flow/threads/t/events', headers: auth, body: { type: 'error' } });
    assert.equal(f.status, 404, f.text);
    const c = new Client(`${off.wsUrl}/echo`);
    await within(c.opened, 5000, 'echo');
    c.close();
  } finally {
    const exit = await off.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.doesNotMatch(off.log(), SANITIZER);
  }
});
