'use strict';
// Issue 11, "no client can crash, wedge or bloat the daemon", in the APIs (PROTOCOLS.md §A-§D and
// "The server API"):
//  - API B: another user's user:<id> is never subscribable, whatever the `channels` claim's globs
//    match ("*", "user:*", "[!x]*");
//  - POST /api/publish refuses the control replies (subscribed, unsubscribed, pong, error) as
//    events, and a thread:<id> subscriber gets a named Flow server type with `data` as its
//    payload, anything else as message.received;
//  - JSON with \u0000 (valid, RFC 8259) is answered correctly by every API; a NUL inside a name
//    (channel, identifier, thread id, command) never makes it act as the name before the NUL,
//    and a NUL inside content (chat content, moderation reference, Flow speech, published data)
//    round-trips exactly;
//  - Flow's process-wide stores are bounded: flow.max_tickets (503 in Flow's error format),
//    expired tickets freed without further requests, flow.max_history_bytes per thread,
//    flow.max_history_total_bytes in all, flow.thread_ttl_s for threads without a socket; each
//    visible in /metrics.
// Each server is a private wshubd (lib/server.js); every wait is bounded.
//   WSHUB_BIN   the binary under test (e.g. build-asan/wshubd)
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');

const { start } = require('./lib/server');
const { within, waitFor, now, httpRequest, parseMetrics } = require('./lib/util');

const SECRET = 'e2e-hardening-secret-9d3a';
const API_KEY = 'e2e-hardening-api-key-51b0';
const MOD_KEY = 'e2e-hardening-mod-key';
const T = { timeout: 20000 };
const ENV = { WSHUB_JWT_SECRET: SECRET, WSHUB_API_KEY: API_KEY, WSHUB_MODERATION_KEYS: MOD_KEY,
  WSHUB_FLOW_CLIENT_IDS: '', WSHUB_CABLE_ALLOWED_ORIGINS: '' };

let seq = 0;
const unique = (p) => `${p}-${process.pid}-${++seq}-${crypto.randomBytes(3).toString('hex')}`;

function token(payload) {
  const b64u = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const input = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u({ iat: now(), exp: now() + 600, ...payload })}`;
  return `${input}.${crypto.createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

const publish = (inst, body) => httpRequest(inst, { method: 'POST', path: '/api/publish', body,
  headers: { Authorization: `Bearer ${API_KEY}` } });

async function metrics(inst) {
  return parseMetrics((await httpRequest(inst, { path: '/metrics' })).text);
}

// A WebSocket client that keeps every JSON frame; next(pred) waits (bounded) for the first
// unread one that matches, quiet(ms) asserts nothing more arrived.
async function client(url, opts = {}) {
  const ws = new WebSocket(url, opts);
  const frames = [];
  let waiters = [];
  ws.on('message', (d) => {
    frames.push(JSON.parse(d.toString('utf8')));
    for (const w of waiters) w();
  });
  ws.on('error', () => {});
  await within(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 5000, `open ${url}`);
  let cursor = 0;
  const c = {
    ws, frames,
    send: (v) => ws.send(typeof v === 'string' ? v : JSON.stringify(v)),
    next: (pred = () => true, what = 'a frame', ms = 3000) => within(new Promise((resolve) => {
      const check = () => {
        for (let i = cursor; i < frames.length; i++) {
          if (pred(frames[i])) { cursor = i + 1; waiters = waiters.filter((w) => w !== check); resolve(frames[i]); return; }
        }
      };
      waiters.push(check);
      check();
    }), ms, `${what}; frames: ${JSON.stringify(frames.slice(cursor)).slice(0, 800)}`),
    close: () => ws.close(),
  };
  return c;
}

const service = (inst, claims) => client(`${inst.wsUrl}/api/ws?token=${token(claims)}`);
const cable = (inst, member) => client(`${inst.wsUrl}/cable?token=${token({ sub: String(member), community_member_id: member })}`);
const moderation = (inst) => client(`${inst.wsUrl}/text/moderation`, { headers: { 'x-chatsight-api-auth': MOD_KEY } });

async function flowEndpoint(inst, headers = {}) {
  const r = await httpRequest(inst, { path: '/socket.info', headers: { 'x-flowai-clientid': 'c', 'x-flowai-sessionid': unique('s'), ...headers } });
  return r;
}
async function flow(inst) {
  const r = await flowEndpoint(inst);
  assert.equal(r.status, 200, r.text);
  return client(r.json.payload.endpoint);
}
const sendSpeech = (c, threadId, speech) => c.send({ type: 'message.send',
  payload: { threadId, speech, originator: { name: 'Jane', role: 'external' } } });

async function history(inst, threadId) {
  const r = await httpRequest(inst, { path: '/thread.history', headers: { 'x-flowai-clientid': 'c', 'x-flowai-threadid': threadId } });
  assert.equal(r.status, 200, r.text);
  return r.json.payload.history;
}

// ------------------------------------------------------------------ one server for the API rules

describe('API rules', () => {
  let inst;
  before(async () => { inst = await start({ env: ENV }); });
  after(async () => { if (inst) await inst.teardown(); });

  test('API B: user:<other> is unauthorized whatever the channels claim matches; user:<self> is allowed', T, async () => {
    for (const patterns of [['*'], ['user:*'], ['[!x]*'], ['*:*', 'conversation:*']]) {
      const me = unique('me');
      const c = await service(inst, { sub: me, channels: patterns });
      for (const other of ['user:victim', `user:${me}x`, 'user:']) {
        c.send({ type: 'subscribe', data: { channel: other } });
        const r = await c.next((m) => m.type === 'error' || m.type === 'subscribed', `answer to ${other}`);
        if (other === 'user:') {
          assert.equal(r.data.code, 'subscription_failed'); // not even a channel name
          continue;
        }
        assert.equal(r.type, 'error', `${JSON.stringify(patterns)} let ${me} subscribe to ${other}`);
        assert.deepEqual([r.data.code, r.data.channel], ['unauthorized', other]);
      }
      c.send({ type: 'subscribe', data: { channel: `user:${me}` } });
      assert.deepEqual((await c.next()).data, { channel: `user:${me}` });
      // Nothing reached it through user:victim.
      assert.equal((await publish(inst, { channel: 'user:victim', event: 'notification', data: { message: 'x' } })).json.delivered, 0);
      c.close();
    }
  });

  test('POST /api/publish refuses the control replies as events, with 400 naming the event', T, async () => {
    const me = unique('me');
    const c = await service(inst, { sub: me });
    for (const event of ['subscribed', 'unsubscribed', 'pong', 'error']) {
      const r = await publish(inst, { channel: `user:${me}`, event, data: { channel: `user:${me}` } });
      assert.equal(r.status, 400, `${event}: ${r.status} ${r.text}`);
      assert.match(r.json.message, new RegExp(`"${event}"`));
    }
    const ok = await publish(inst, { channel: `user:${me}`, event: 'notification', data: { message: 'real' } });
    assert.equal(ok.json.delivered, 1);
    assert.equal((await c.next()).type, 'notification'); // the first and only frame: nothing forged came before
    c.close();
  });

  test('Flow: a published server type arrives as that type with data as its payload, anything else as message.received', T, async () => {
    const f = await flow(inst);
    const threadId = unique('thread');
    sendSpeech(f, threadId, 'hello');
    await f.next((m) => m.type === 'message.received', 'the echo');
    const types = ['agent.typing', 'activities.created', 'activities.delivered', 'interruption.occurred'];
    for (const event of types) {
      const data = { event, n: 1 };
      assert.equal((await publish(inst, { channel: `thread:${threadId}`, event, data })).json.delivered, 1);
      assert.deepEqual(await f.next(), { type: event, payload: data });
    }
    for (const event of ['notification', 'message.send', 'thread.noticed', 'typing']) {
      await publish(inst, { channel: `thread:${threadId}`, event, data: { text: `as ${event}` } });
      const m = await f.next();
      assert.equal(m.type, 'message.received', `${event} became ${m.type}`);
      assert.equal(m.payload.messages[0].responses[0].payload.text, `as ${event}`);
    }
    f.close();
  });

  test('\\u0000 in JSON: API B answers it, a channel with a NUL is a bad channel, content round-trips', T, async () => {
    const me = unique('me');
    const c = await service(inst, { sub: me });
    c.send('{"type":"ping","data":{"note":"a\\u0000b"}}');
    assert.equal((await c.next()).type, 'pong');
    c.send({ type: 'ping\u0000x' });
    const unknown = await c.next();
    assert.deepEqual([unknown.type, unknown.data.code], ['error', 'invalid_request']);
    assert.match(unknown.data.message, /unknown type/);

    const conv = unique('conv');
    c.send({ type: 'subscribe', data: { channel: `conversation:${conv}\u0000x` } });
    const bad = await c.next();
    assert.deepEqual([bad.data.code, bad.data.channel], ['subscription_failed', `conversation:${conv}\u0000x`]);
    assert.equal((await publish(inst, { channel: `conversation:${conv}`, event: 'chat_message', data: {} })).json.delivered, 0);

    // Unsubscribing "user:<me>\0x" is not unsubscribing user:<me>.
    c.send({ type: 'unsubscribe', data: { channel: `user:${me}\u0000x` } });
    const unsub = await c.next();
    assert.deepEqual([unsub.type, unsub.data], ['unsubscribed', { channel: `user:${me}\u0000x` }]);
    assert.equal((await publish(inst, { channel: `user:${me}`, event: 'notification', data: { message: 'still\u0000here' } })).json.delivered, 1);
    assert.equal((await c.next()).data.message, 'still\u0000here');

    c.send({ type: 'chat_message', data: { conversation_id: `${conv}\u0000x`, content: 'x' } });
    assert.equal((await c.next()).data.code, 'invalid_request');
    c.send({ type: 'subscribe', data: { channel: `conversation:${conv}` } });
    await c.next((m) => m.type === 'subscribed');
    c.send({ type: 'chat_message', data: { conversation_id: conv, content: 'one\u0000two' } });
    assert.deepEqual((await c.next()).data, { conversation_id: conv, sender_id: me, content: 'one\u0000two' });
    c.close();
  });

  test('\\u0000 in JSON: cable rejects identifiers whose names hold a NUL, echoing them exactly; published data round-trips', T, async () => {
    const c = await cable(inst, 42);
    await c.next((m) => m.type === 'welcome');
    const reject = async (identifier) => {
      c.send({ command: 'subscribe', identifier });
      const r = await c.next((m) => m.identifier !== undefined, `an answer to ${JSON.stringify(identifier)}`);
      assert.deepEqual(r, { identifier, type: 'reject_subscription' });
    };
    await reject('{"channel":"ChatRoomChannel\\u0000x","community_member_id":42}');
    await reject('{"channel":"ChatRoomChannel","community_member_id":"42\\u0000"}');
    await reject('{"channel":"Chats::RoomChannel","chat_room_id":"7\\u0000x"}');
    await reject('{"channel":"ChatRoomChannel","community_member_id":42}\u0000');
    c.send({ command: 'subscribe\u0000', identifier: '{"channel":"ChatRoomChannel","community_member_id":42}' }); // not a command
    const good = '{"channel":"ChatRoomChannel","community_member_id":42,"note":"a\\u0000b"}';
    c.send({ command: 'subscribe', identifier: good });
    assert.deepEqual(await c.next((m) => m.identifier !== undefined), { identifier: good, type: 'confirm_subscription' });
    const data = { body: 'x\u0000y' };
    assert.equal((await publish(inst, { channel: 'chat-room-channel-42', event: 'newMessage', data })).json.delivered, 1);
    assert.deepEqual(await c.next((m) => m.identifier !== undefined), { identifier: good, message: { event: 'newMessage', data } });
    c.close();
  });

  test('\\u0000 in JSON: moderation scores the sample and echoes the reference exactly', T, async () => {
    const c = await moderation(inst);
    c.send({ sample: 'hello\u0000world', reference: 'ref\u00001' });
    const r = await c.next();
    assert.equal(r.success, true, JSON.stringify(r));
    assert.equal(r.response.metadata.self_reference, 'ref\u00001');
    c.close();
    const http = await httpRequest(inst, { method: 'POST', path: '/text/moderation', headers: { 'x-chatsight-api-auth': MOD_KEY },
      body: { sample: 'a\u0000b', reference: 'h\u0000' } });
    assert.equal(http.status, 200, http.text);
    assert.equal(http.json.response.metadata.self_reference, 'h\u0000');
  });

  test('\\u0000 in JSON: Flow speech round-trips, a thread id or type with a NUL is an error', T, async () => {
    const f = await flow(inst);
    const threadId = unique('thread');
    sendSpeech(f, threadId, 'hi\u0000there');
    const delivered = await f.next();
    assert.deepEqual([delivered.type, delivered.payload.speech], ['message.delivered', 'hi\u0000there']);
    const reply = await f.next();
    assert.equal(reply.payload.messages[0].responses[0].payload.text, 'You said: hi\u0000there');
    assert.equal(reply.payload.messages[0].fallback, 'You said: hi\u0000there');
    sendSpeech(f, `${threadId}\u0000x`, 'aliased?');
    assert.equal((await f.next()).type, 'error');
    f.send({ type: 'ping\u0000' });
    assert.equal((await f.next()).type, 'error');
    f.send('{"type":"ping","payload":{"x":"\\u0000"}}');
    assert.equal((await f.next()).type, 'pong');
    const h = await history(inst, threadId);
    assert.equal(h.length, 2);
    assert.equal(h[0].payload.speech, 'hi\u0000there');
    f.close();
  });

  test('\\u0000 in JSON: POST /api/publish accepts it in data, refuses it in the event', T, async () => {
    const bad = await publish(inst, { channel: 'conversation:x', event: 'chat_message\u0000x', data: {} });
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.json.message, /^event:/);
    const ok = await publish(inst, { channel: 'conversation:x', event: 'chat_message', data: { content: '\u0000' } });
    assert.equal(ok.status, 200, ok.text);
  });
});

// ------------------------------------------------------------------ Flow's bounded stores

describe('Flow stores are bounded', () => {
  let inst;
  const TOTAL = 16384;
  const PER_THREAD = 4096;
  before(async () => {
    inst = await start({ env: { ...ENV, WSHUB_FLOW_MAX_TICKETS: '5', WSHUB_FLOW_TOKEN_TTL_MS: '1000',
      WSHUB_FLOW_MAX_HISTORY_BYTES: String(PER_THREAD), WSHUB_FLOW_MAX_HISTORY_TOTAL_BYTES: String(TOTAL) } });
  });
  after(async () => { if (inst) await inst.teardown(); });

  test('flow.max_tickets: past it /socket.info answers 503 in Flow\'s error format; expired tickets are freed', T, async () => {
    for (let i = 0; i < 5; i++) assert.equal((await flowEndpoint(inst)).status, 200);
    const refused = await flowEndpoint(inst);
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.json.status, 'error');
    assert.deepEqual(Object.keys(refused.json.payload), ['message']);
    assert.match(refused.json.payload.message, /flow\.max_tickets/);
    let m = await metrics(inst);
    assert.equal(m.wshub_flow_tickets, 5);
    assert.equal(m.wshub_flow_ticket_refusals_total, 1);
    // No request comes: the sweep frees them once they expire (flow.token_ttl_ms = 1 s).
    m = await waitFor(async () => { const x = await metrics(inst); return x.wshub_flow_tickets === 0 && x; }, 4000, 'tickets freed');
    assert.ok(m.wshub_flow_tickets_expired_total >= 5);
    assert.equal((await flowEndpoint(inst)).status, 200);
  });

  test('flow.max_history_bytes: a thread keeps its newest messages within the bound', T, async () => {
    const f = await flow(inst);
    const threadId = unique('thread');
    for (let i = 0; i < 10; i++) {
      sendSpeech(f, threadId, `${i}:${'x'.repeat(1000)}`);
      await f.next((m) => m.type === 'message.received', `reply ${i}`);
    }
    const h = await history(inst, threadId);
    assert.ok(h.length > 0 && h.length < 6, `${h.length} entries kept`);
    assert.ok(JSON.stringify(h).length <= PER_THREAD, `${JSON.stringify(h).length} bytes kept`);
    assert.match(h.at(-1).payload.messages[0].fallback, /^You said: 9:/);
    const m = await metrics(inst);
    assert.ok(m['wshub_flow_history_dropped_total{reason="thread_bytes"}'] >= 14);
    assert.ok(m.wshub_flow_history_bytes <= PER_THREAD, `gauge ${m.wshub_flow_history_bytes}`);
    f.close();
  });

  test('flow.max_history_total_bytes: the least recently active threads lose their history first', T, async () => {
    const threads = Array.from({ length: 12 }, () => unique('pub'));
    for (const t of threads) {
      const r = await publish(inst, { channel: `thread:${t}`, event: 'message.received', data: { text: 'y'.repeat(1000) } });
      assert.equal(r.status, 200);
    }
    const m = await metrics(inst);
    assert.ok(m.wshub_flow_history_bytes <= TOTAL, `gauge ${m.wshub_flow_history_bytes} > ${TOTAL}`);
    assert.ok(m['wshub_flow_history_dropped_total{reason="total_bytes"}'] >= 4, JSON.stringify(m).slice(-900));
    assert.equal((await history(inst, threads[0])).length, 0);
    assert.equal((await history(inst, threads.at(-1))).length, 1);
  });
});

describe('Flow threads expire', () => {
  let inst;
  before(async () => { inst = await start({ env: { ...ENV, WSHUB_FLOW_THREAD_TTL_S: '1' } }); });
  after(async () => { if (inst) await inst.teardown(); });

  test('flow.thread_ttl_s: a quiet thread without a socket is forgotten; one with a socket is kept', T, async () => {
    const f = await flow(inst);
    const kept = unique('kept');
    sendSpeech(f, kept, 'still here');
    await f.next((m) => m.type === 'message.received');
    const quiet = unique('quiet');
    await publish(inst, { channel: `thread:${quiet}`, event: 'message.received', data: { text: 'bye' } });
    assert.equal((await history(inst, quiet)).length, 1);
    await waitFor(async () => (await history(inst, quiet)).length === 0, 4000, 'the quiet thread to expire');
    assert.equal((await history(inst, kept)).length, 2);
    const m = await metrics(inst);
    assert.ok(m['wshub_flow_history_dropped_total{reason="expired"}'] >= 1);
    assert.equal(m.wshub_flow_threads, 1);
    f.close();
  });
});

test('flow.max_pending_replies: past it a delayed bot reply goes out at once, none held beyond the bound', T, async () => {
  const inst = await start({ env: { ...ENV, WSHUB_WORKERS: '1', WSHUB_FLOW_REPLY_DELAY_MS: '60000',
    WSHUB_FLOW_MAX_PENDING_REPLIES: '2' } });
  try {
    const f = await flow(inst);
    const threadId = unique('thread');
    for (let i = 0; i < 5; i++) sendSpeech(f, threadId, `m${i}`);
    // Two wait their minute (agent.typing); the three past the bound are answered now.
    for (let i = 2; i < 5; i++) {
      const r = await f.next((m) => m.type === 'message.received', `the reply to m${i}`);
      assert.match(r.payload.messages[0].fallback, new RegExp(`^You said: m${i}$`));
    }
    assert.equal(f.frames.filter((m) => m.type === 'agent.typing').length, 2);
    assert.equal((await metrics(inst)).wshub_flow_pending_replies, 2);
    f.close();
  } finally {
    await inst.teardown();
  }
});
