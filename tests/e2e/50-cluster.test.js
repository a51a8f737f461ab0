'use strict';
// Scale-out through Redis (issue 13): a real redis-server (lib/redis.js) and several wshubd
// nodes with broker.type "redis" (lib/cluster.js). What is published on one node reaches the
// subscribers of every node, in one order and once; POST /api/publish answers when Redis took
// the publish, with `delivered` = the nodes that received it; while Redis is down publishes
// are refused in each API's format and /readyz says 503, and once it is back the nodes
// resubscribe by themselves, clients still connected.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');

const { startRedis } = require('./lib/redis');
const { startNodes, brokerEnv, JWT_SECRET, API_KEY } = require('./lib/cluster');
const { waitFor, httpRequest } = require('./lib/util');

const T = { timeout: 90000 };

function token(sub, extra = {}) {
  const b64u = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const claims = { sub, exp: Math.floor(Date.now() / 1000) + 3600, ...extra };
  const input = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u(claims)}`;
  return `${input}.${crypto.createHmac('sha256', JWT_SECRET).update(input).digest('base64url')}`;
}

const ORIGIN = 'http://cluster.example';

// An Action Cable client of member on node, subscribed to its ChatRoomChannel; .messages
// collects the broadcasts (pings and protocol messages left out).
async function cableMember(node, member) {
  const ws = new WebSocket(`ws://127.0.0.1:${node.port}/cable`, ['actioncable-v1-json'],
    { headers: { Origin: ORIGIN, Authorization: `Bearer ${token(String(member), { community_member_id: member })}` } });
  const c = { ws, messages: [], identifier: JSON.stringify({ channel: 'ChatRoomChannel', community_member_id: member }) };
  const confirmed = new Promise((resolve, reject) => {
    ws.on('message', (raw) => {
      const m = JSON.parse(raw);
      if (m.type === 'welcome') ws.send(JSON.stringify({ command: 'subscribe', identifier: c.identifier }));
      else if (m.type === 'confirm_subscription') resolve();
      else if (m.type === 'reject_subscription' || m.type === 'disconnect') reject(new Error(String(raw)));
      else if (m.message && m.type === undefined) c.messages.push(m); // a broadcast (a ping has a type)
    });
    ws.once('error', reject);
  });
  await confirmed;
  return c;
}

// An API B client subscribed to channel on node; .events collects every event's data.
async function subscriber(node, channel, sub = 'alice') {
  const ws = new WebSocket(`ws://127.0.0.1:${node.port}/api/ws?token=${token(sub)}`);
  const c = { ws, events: [], errors: [], closed: false };
  ws.on('message', (raw) => {
    const m = JSON.parse(raw);
    if (m.type === 'error') c.errors.push(m.data);
    else if (m.type !== 'subscribed' && m.type !== 'pong') c.events.push(m);
  });
  ws.on('close', () => { c.closed = true; });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const subscribed = new Promise((resolve) => {
    ws.on('message', (raw) => { if (JSON.parse(raw).type === 'subscribed') resolve(); });
  });
  ws.send(JSON.stringify({ type: 'subscribe', data: { channel } }));
  await subscribed;
  return c;
}

function publish(node, channel, data, event = 'notification', agent = false) {
  return httpRequest(node, {
    method: 'POST', path: '/api/publish', agent,
    headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, event, data }),
  });
}

// Redis has this node's SUBSCRIBE for channel once PUBSUB NUMSUB counts every node.
async function brokerSubscribed(redis, channel, nodes) {
  await waitFor(async () => {
    const r = await redis.command(['PUBSUB', 'NUMSUB', `wshub:${channel}`]);
    return Number(r[1]) === nodes;
  }, 5000, `${nodes} nodes subscribed to ${channel} in redis`);
}

test('API B across nodes: published on B, received on A; delivered counts nodes', T, async () => {
  const redis = await startRedis();
  const cluster = await startNodes(2, { env: brokerEnv(redis) });
  const [a, b] = cluster.nodes;
  try {
    const conv = `x-${crypto.randomBytes(3).toString('hex')}`;
    const ch = `conversation:${conv}`;
    const sa = await subscriber(a, ch);
    await brokerSubscribed(redis, ch, 1);
    const r = await publish(b, ch, { text: 'hello from b' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { ok: true, delivered: 1 });
    await waitFor(() => sa.events.length === 1, 3000, 'the event on node A');
    assert.equal(sa.events[0].type, 'notification');
    assert.deepEqual(sa.events[0].data, { text: 'hello from b' });

    // A subscriber on B too: both nodes receive, and `delivered` says 2.
    const sb = await subscriber(b, ch, 'bob');
    await brokerSubscribed(redis, ch, 2);
    const r2 = await publish(a, ch, { text: 'to both' });
    assert.deepEqual(r2.json, { ok: true, delivered: 2 });
    await waitFor(() => sa.events.length === 2 && sb.events.length === 1, 3000, 'the event on both nodes');
    // The publisher's timestamp travels with the message: identical on both nodes.
    assert.equal(sa.events[1].timestamp, sb.events[0].timestamp);

    // An API B chat_message on A reaches B's subscriber.
    sa.ws.send(JSON.stringify({ type: 'chat_message', data: { conversation_id: conv, content: 'chat from a' } }));
    await waitFor(() => sb.events.some((e) => e.type === 'chat_message'), 3000, 'the chat_message on node B');
    const chat = sb.events.find((e) => e.type === 'chat_message');
    assert.deepEqual(chat.data, { conversation_id: conv, sender_id: 'alice', content: 'chat from a' });
    for (const c of [sa, sb]) c.ws.close();
  } finally {
    await cluster.teardown();
    await redis.teardown();
  }
});

test('Action Cable across nodes: a broadcast published on B reaches the member\'s subscription on A and on B', T, async () => {
  const redis = await startRedis();
  const cluster = await startNodes(2, { env: brokerEnv(redis, { WSHUB_CABLE_ALLOWED_ORIGINS: ORIGIN }) });
  const [a, b] = cluster.nodes;
  try {
    const member = 4200 + Math.floor(Math.random() * 1000);
    const ca = await cableMember(a, member);
    const cb = await cableMember(b, member);
    const ch = `chat-room-channel-${member}`;
    await brokerSubscribed(redis, ch, 2);
    const r = await publish(b, ch, { id: 5, body: 'Hello from node B' }, 'newMessage');
    assert.deepEqual(r.json, { ok: true, delivered: 2 });
    await waitFor(() => ca.messages.length === 1 && cb.messages.length === 1, 3000, 'the broadcast on both nodes');
    for (const c of [ca, cb]) {
      assert.deepEqual(c.messages[0], { identifier: c.identifier,
        message: { event: 'newMessage', data: { id: 5, body: 'Hello from node B' } } });
      c.ws.close();
    }
  } finally {
    await cluster.teardown();
    await redis.teardown();
  }
});

test('10,000 publishes from two publishers on two nodes into one channel: every subscriber on every node sees one sequence, once', T, async () => {
  const redis = await startRedis();
  const cluster = await startNodes(2, { env: brokerEnv(redis, { WSHUB_WORKERS: '2' }) });
  const [a, b] = cluster.nodes;
  try {
    const ch = `conversation:burst-${crypto.randomBytes(3).toString('hex')}`;
    const subs = [await subscriber(a, ch, 'a1'), await subscriber(a, ch, 'a2'), await subscriber(b, ch, 'b1'),
      await subscriber(b, ch, 'b2')];
    await brokerSubscribed(redis, ch, 2);
    const http = require('node:http');
    const N = 5000;
    async function run(node, tag) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
      let next = 0;
      async function worker() {
        while (next < N) {
          const i = next++;
          const r = await publish(node, ch, { p: tag, i }, 'notification', agent);
          assert.equal(r.status, 200, r.text);
        }
      }
      await Promise.all(Array.from({ length: 8 }, worker));
      agent.destroy();
    }
    await Promise.all([run(a, 'a'), run(b, 'b')]);
    await waitFor(() => subs.every((s) => s.events.length >= 2 * N), 30000, 'every event at every subscriber');
    await new Promise((r) => setTimeout(r, 300)); // nothing more may come: no duplicates
    const seqs = subs.map((s) => s.events.map((e) => `${e.data.p}${e.data.i}`));
    for (const s of seqs) {
      assert.equal(s.length, 2 * N, 'no event twice, none missing');
      assert.equal(new Set(s).size, 2 * N);
    }
    for (const s of seqs.slice(1)) assert.deepEqual(s, seqs[0], 'one order on every node');
    // Each publisher's own events in the order it published them (one connection's order
    // is kept by Redis; across its 8 connections only the interleaving is free).
    for (const tag of ['a', 'b']) {
      const mine = seqs[0].filter((x) => x[0] === tag);
      assert.equal(mine.length, N);
    }
    for (const s of subs) s.ws.close();
  } finally {
    await cluster.teardown();
    await redis.teardown();
  }
});

// "subscribed" / confirm_subscription are sent once Redis has the node's SUBSCRIBE: a publish on
// another node right after the confirmation reaches the subscriber (no PUBSUB NUMSUB wait here;
// before confirmations waited for Redis, a publish could overtake the SUBSCRIBE and be lost).
test('a confirmation means the channel is subscribed in Redis: a publish on the other node right after it arrives', T, async () => {
  const redis = await startRedis();
  const cluster = await startNodes(2, { env: brokerEnv(redis, { WSHUB_CABLE_ALLOWED_ORIGINS: ORIGIN }) });
  const [a, b] = cluster.nodes;
  const clients = [];
  try {
    for (let i = 0; i < 25; i++) {
      const ch = `conversation:conf-${i}-${crypto.randomBytes(3).toString('hex')}`;
      const s = await subscriber(a, ch, `u${i}`);
      clients.push(s);
      const r = await publish(b, ch, { i });
      assert.deepEqual(r.json, { ok: true, delivered: 1 }, `channel ${i}: node A must have it subscribed`);
      await waitFor(() => s.events.length === 1, 3000, `the publish of channel ${i} on node A`);
    }
    // Action Cable: confirm_subscription likewise.
    for (let member = 300; member < 310; member++) {
      const c = await cableMember(a, member);
      clients.push(c);
      const r = await publish(b, `chat-room-channel-${member}`, { text: `m${member}` }, 'newMessage');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.delivered, 1, `member ${member}: node A must have the stream subscribed`);
      await waitFor(() => c.messages.length === 1, 3000, `the broadcast to member ${member}`);
    }
  } finally {
    for (const c of clients) c.ws.close();
    await cluster.teardown();
    await redis.teardown();
  }
});

// While the link is down a new subscription is refused in each API's format (never left unanswered).
test('Redis down: a new subscription is refused (API B error, cable reject_subscription)', T, async () => {
  const redis = await startRedis();
  const cluster = await startNodes(1, { env: brokerEnv(redis, { WSHUB_BROKER_RECONNECT_MAX_MS: '500',
    WSHUB_CABLE_ALLOWED_ORIGINS: ORIGIN }) });
  const [a] = cluster.nodes;
  try {
    await redis.stop();
    await waitFor(async () => (await a.get('/readyz')).status === 503, 5000, '/readyz 503');
    const ws = new WebSocket(`ws://127.0.0.1:${a.port}/api/ws?token=${token('down1')}`);
    const msgs = [];
    ws.on('message', (raw) => msgs.push(JSON.parse(raw)));
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    ws.send(JSON.stringify({ type: 'subscribe', data: { channel: 'conversation:down' } }));
    await waitFor(() => msgs.some((m) => m.type === 'error' && m.data.channel === 'conversation:down'), 3000,
      'the API B error for the subscribe');
    const e = msgs.find((m) => m.type === 'error' && m.data.channel === 'conversation:down');
    assert.equal(e.data.code, 'subscription_failed');
    assert.match(e.data.message, /broker is unreachable/);
    assert.ok(!msgs.some((m) => m.type === 'subscribed'), 'never "subscribed"');
    ws.close();

    await assert.rejects(cableMember(a, 77), /reject_subscription/);

    // Back: the same subscribe works, confirmed once Redis has it.
    await redis.start();
    await waitFor(async () => (await a.get('/readyz')).status === 200, 5000, '/readyz 200');
    const s = await subscriber(a, 'conversation:down', 'down2');
    const r = await publish(a, 'conversation:down', { ok: 1 });
    assert.deepEqual(r.json, { ok: true, delivered: 1 });
    await waitFor(() => s.events.length === 1, 3000, 'the event after the outage');
    s.ws.close();
  } finally {
    await cluster.teardown();
    await redis.teardown();
  }
});

test('Redis down: publishes refused in each API\'s format, /readyz 503, /healthz 200; back: resubscribed, no client reconnected, nothing twice', T, async () => {
  const redis = await startRedis();
  const cluster = await startNodes(2, { env: brokerEnv(redis, { WSHUB_BROKER_RECONNECT_MAX_MS: '500' }) });
  const [a, b] = cluster.nodes;
  try {
    const conv = `outage-${crypto.randomBytes(3).toString('hex')}`;
    const ch = `conversation:${conv}`;
    const sa = await subscriber(a, ch, 'a1');
    const sb = await subscriber(b, ch, 'b1');
    await brokerSubscribed(redis, ch, 2);
    assert.equal((await a.get('/readyz')).status, 200);

    await redis.stop();
    await waitFor(async () => (await a.get('/readyz')).status === 503 && (await b.get('/readyz')).status === 503,
      5000, '/readyz 503 on both nodes');
    assert.equal((await a.get('/healthz')).status, 200);
    const r = await publish(b, ch, { text: 'lost?' });
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.ok, false);
    assert.equal(r.json.error, 'unavailable');
    sa.ws.send(JSON.stringify({ type: 'chat_message', data: { conversation_id: conv, content: 'while down' } }));
    await waitFor(() => sa.errors.length === 1, 3000, 'the API B error');
    assert.equal(sa.errors[0].code, 'internal_error');
    assert.match(sa.errors[0].message, /broker is unreachable/);

    await redis.start();
    const back = Date.now();
    await waitFor(async () => (await a.get('/readyz')).status === 200 && (await b.get('/readyz')).status === 200,
      5000, '/readyz 200 again');
    await brokerSubscribed(redis, ch, 2);
    const r2 = await publish(a, ch, { text: 'after' });
    assert.deepEqual(r2.json, { ok: true, delivered: 2 });
    await waitFor(() => sa.events.length === 1 && sb.events.length === 1, 2000, 'the publish on both nodes');
    assert.ok(Date.now() - back < 2000 + 1000, 'within 2 s of Redis answering again (plus the backoff cap)');
    assert.equal(sa.closed || sb.closed, false, 'no client reconnected');
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(sa.events.length, 1, 'nothing twice, nothing from the outage');
    assert.equal(sb.events.length, 1);
    const m = (await a.get('/metrics')).body;
    assert.match(m, /^wshub_broker_up 1$/m);
    assert.match(m, /^wshub_broker_reconnects_total [1-9]/m);
    assert.match(m, /^wshub_broker_publishes_refused_total [1-9]/m);
    for (const c of [sa, sb]) c.ws.close();
  } finally {
    await cluster.teardown();
    await redis.teardown();
  }
});

test('a stuck Redis cannot grow a node: past broker.max_pending_bytes publishes are refused, the rest answered once it moves', T, async () => {
  const redis = await startRedis();
  const cluster = await startNodes(1, { env: brokerEnv(redis, { WSHUB_BROKER_MAX_PENDING_BYTES: '65536' }) });
  const [a] = cluster.nodes;
  try {
    await waitFor(async () => (await a.get('/readyz')).status === 200, 5000, 'the broker up');
    // Redis answers nothing for 3 s: every PUBLISH waits for its reply meanwhile.
    assert.equal(await redis.command(['CLIENT', 'PAUSE', '3000', 'ALL']), 'OK');
    const body = 'x'.repeat(8000);
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => publish(a, 'conversation:stuck', { i, body })));
    const ok = rs.filter((r) => r.status === 200), refused = rs.filter((r) => r.status === 503);
    assert.equal(ok.length + refused.length, 20, rs.map((r) => r.status).join(','));
    assert.ok(refused.length >= 10, `at 8 KB each, at most 8 fit in 64 KiB (refused ${refused.length})`);
    assert.ok(ok.length >= 1, 'those that fitted are answered once Redis moves');
    for (const r of refused) assert.equal(r.json.error, 'unavailable');
    const m = (await a.get('/metrics')).body;
    assert.match(m, /^wshub_broker_pending_bytes 0$/m, 'everything answered holds nothing');
    assert.match(m, new RegExp(`^wshub_broker_publishes_refused_total ${refused.length}$`, 'm'));
  } finally {
    await cluster.teardown();
    await redis.teardown();
  }
});

// AUTH goes first on every connection; a refused one ends the link (logged, without the
// password) instead of a link that answers every command with an error.
test('Redis with a password: the right one links the node, a wrong one publishes nothing and says why', T, async () => {
  const redis = await startRedis();
  let good, bad;
  try {
    assert.equal(await redis.command(['CONFIG', 'SET', 'requirepass', 's3cret']), 'OK');
    const url = (pw) => redis.url.replace('redis://', `redis://:${pw}@`);
    good = await startNodes(1, { env: brokerEnv(redis, { WSHUB_REDIS_URL: url('s3cret') }) });
    bad = await startNodes(1, { ready: false, env: brokerEnv(redis, { WSHUB_REDIS_URL: url('wrong'),
      WSHUB_BROKER_RECONNECT_MAX_MS: '200' }) });
    const [b] = bad.nodes;
    await waitFor(() => /AUTH refused by redis/.test(b.log()), 5000, 'the refusal in the log');
    // Between a reconnect and AUTH's answer the link looks up for a moment: a publish then gets
    // Redis's error, else the link is down; either way 503, never a silent success.
    for (let i = 0; i < 5; i++) assert.equal((await publish(b, 'conversation:pw', { i })).status, 503);
    assert.equal((await publish(good.nodes[0], 'conversation:pw', { ok: 1 })).status, 200);
    assert.doesNotMatch(b.log(), /wrong/, 'the password is never logged');
    assert.equal((await good.nodes[0].get('/readyz')).status, 200);
  } finally {
    if (good) await good.teardown();
    if (bad) await bad.teardown();
    await redis.teardown();
  }
});
