'use strict';
// Reliable streams (issue 17): channel history with stream positions, recovery after a reconnect.
//  - API B with `ws`: events carry offset and epoch; subscribe with data.since gets exactly the
//    missed events, in order, before live ones, with subscribed.data.recovered true; a position
//    older than the history: recovered false and no partial replay.
//  - Action Cable with the real @anycable/core (actioncable-v1-ext-json): the TCP connection is
//    cut (a proxy in this file drops it), 100 messages are published meanwhile, the client
//    reconnects by itself: it gets all 100 in order, none twice, its session restored without a
//    new subscribe. The same across two nodes with the Redis broker (it reconnects to the other).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const WebSocket = require('ws');

const { start } = require('./lib/server');
const { startRedis } = require('./lib/redis');
const { startNodes, brokerEnv, JWT_SECRET, API_KEY } = require('./lib/cluster');
const { waitFor, httpRequest, parseMetrics } = require('./lib/util');

const T = { timeout: 90000 };
const ORIGIN = 'http://history.example';
const ENV = { WSHUB_JWT_SECRET: JWT_SECRET, WSHUB_API_KEY: API_KEY, WSHUB_CABLE_ALLOWED_ORIGINS: ORIGIN,
  WSHUB_HISTORY_SIZE: '200' };

function token(sub, extra = {}) {
  const b64u = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const claims = { sub, exp: Math.floor(Date.now() / 1000) + 3600, ...extra };
  const input = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u(claims)}`;
  return `${input}.${crypto.createHmac('sha256', JWT_SECRET).update(input).digest('base64url')}`;
}

async function publish(node, channel, data, event = 'note') {
  const r = await httpRequest(node, {
    method: 'POST', path: '/api/publish',
    headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, event, data }),
  });
  assert.equal(r.status, 200, `publish: ${r.status} ${r.body}`);
}

// ------------------------------------------------------------------ API B

// A `ws` client of API B; .events collects every non-reply message, .replies the rest.
async function serviceClient(node, sub) {
  const ws = new WebSocket(`ws://127.0.0.1:${node.port}/api/ws?token=${token(sub)}`);
  const c = { ws, events: [], replies: [] };
  ws.on('message', (raw) => {
    const m = JSON.parse(raw);
    (['subscribed', 'unsubscribed', 'error', 'pong'].includes(m.type) ? c.replies : c.events).push(m);
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  return c;
}

async function subscribe(c, channel, since) {
  const n = c.replies.length;
  c.ws.send(JSON.stringify({ type: 'subscribe', data: since ? { channel, since } : { channel } }));
  await waitFor(() => c.replies.length > n, 5000, `subscribed to ${channel}`);
  return c.replies[n];
}

async function close(c) {
  c.ws.close();
  await new Promise((resolve) => c.ws.once('close', resolve));
}

test('API B: since replays exactly the missed events, then live; too old: recovered false, nothing replayed', T, async () => {
  const srv = await start({ env: { ...ENV, WSHUB_HISTORY_SIZE: '20' } });
  try {
    const ch = 'news:h1';
    const a = await serviceClient(srv, 'alice');
    const r0 = await subscribe(a, ch);
    assert.equal(r0.type, 'subscribed');
    assert.equal(r0.data.recovered, undefined, 'no since: no recovered flag');
    for (let i = 0; i < 3; i++) await publish(srv, ch, { i });
    await waitFor(() => a.events.length === 3, 5000, '3 live events');
    const last = a.events[2];
    assert.equal(typeof last.epoch, 'string');
    assert.deepEqual(a.events.map((e) => e.offset), [1, 2, 3]);
    await close(a);

    for (let i = 3; i < 8; i++) await publish(srv, ch, { i });
    const b = await serviceClient(srv, 'alice');
    const r1 = await subscribe(b, ch, { offset: last.offset, epoch: last.epoch });
    assert.deepEqual(r1.data, { channel: ch, recovered: true });
    await waitFor(() => b.events.length === 5, 5000, 'the 5 missed events');
    await publish(srv, ch, { i: 8 });
    await waitFor(() => b.events.length === 6, 5000, 'then the live one');
    assert.deepEqual(b.events.map((e) => e.data.i), [3, 4, 5, 6, 7, 8]);
    assert.deepEqual(b.events.map((e) => e.offset), [4, 5, 6, 7, 8, 9]);
    await close(b);

    // 30 more: offset 9 has left a 20-message history
    for (let i = 9; i < 39; i++) await publish(srv, ch, { i });
    const c = await serviceClient(srv, 'alice');
    const r2 = await subscribe(c, ch, { offset: 9, epoch: last.epoch });
    assert.deepEqual(r2.data, { channel: ch, recovered: false });
    const r3 = await subscribe(c, 'news:other', { offset: 1, epoch: 'deadbeef' });
    assert.deepEqual(r3.data, { channel: 'news:other', recovered: false }, 'an unknown epoch cannot recover');
    await publish(srv, ch, { i: 39 });
    await waitFor(() => c.events.length === 1, 5000, 'the live event');
    assert.deepEqual(c.events.map((e) => e.data.i), [39], 'no partial replay');
    const bad = await subscribe(c, ch, { offset: -1, epoch: last.epoch });
    assert.equal(bad.type, 'error');
    await close(c);

    const m = parseMetrics((await srv.get('/metrics')).body);
    assert.equal(m.wshub_history_recoveries_attempted_total, 3);
    assert.equal(m.wshub_history_recoveries_succeeded_total, 1);
    assert.equal(m.wshub_history_recoveries_failed_total, 2);
    assert.ok(m.wshub_history_messages >= 20);
  } finally {
    await srv.teardown();
  }
});

// ------------------------------------------------------------------ Action Cable, @anycable/core

// A TCP proxy whose connections can be cut, and whose target can change.
async function proxy(targetPort) {
  const socks = new Set();
  const p = { target: targetPort, cuts: 0 };
  const server = net.createServer((client) => {
    const up = net.connect(p.target, '127.0.0.1');
    socks.add(client);
    socks.add(up);
    client.pipe(up);
    up.pipe(client);
    const done = () => { client.destroy(); up.destroy(); socks.delete(client); socks.delete(up); };
    client.on('error', done);
    up.on('error', done);
    client.on('close', done);
    up.on('close', done);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  p.port = server.address().port;
  p.cut = () => { p.cuts++; for (const s of socks) s.destroy(); };
  p.close = () => new Promise((resolve) => { p.cut(); server.close(resolve); });
  return p;
}

async function anycable(port, member) {
  const { createCable } = await import('@anycable/core');
  const cable = createCable(`ws://127.0.0.1:${port}/cable?token=${token(String(member), { community_member_id: member })}`, {
    protocol: 'actioncable-v1-ext-json',
    websocketImplementation: WebSocket,
    websocketOptions: { headers: { Origin: ORIGIN } },
    reconnectStrategy: () => 200,
    logLevel: 'error',
  });
  const c = { cable, got: [], metas: [], connects: [] };
  cable.on('connect', (ev) => c.connects.push(ev));
  const channel = cable.subscribeTo('NotificationChannel', { community_member_id: member });
  channel.on('message', (msg, meta) => { c.got.push(msg.data.n); c.metas.push(meta); });
  await channel.ensureSubscribed();
  return c;
}

async function recoverScenario(nodes, member) {
  const ch = `notification-channel-${member}`;
  const px = await proxy(nodes[0].port);
  const c = await anycable(px.port, member);
  try {
    await publish(nodes[0], ch, { n: -1 });
    await waitFor(() => c.got.length === 1, 5000, 'the first broadcast (it gives the client its position)');
    // Let the client reconnect only once the 100 are published: the proxy's target is down.
    px.target = 1;
    px.cut();
    await waitFor(() => c.cable.state !== 'connected', 5000, 'the client noticed the cut');
    for (let n = 0; n < 100; n++) await publish(nodes[0], ch, { n });
    px.target = nodes[nodes.length - 1].port;
    await waitFor(() => c.got.length >= 101, 20000, 'the 100 missed messages after the reconnect');
    await publish(nodes[0], ch, { n: 100 });
    await waitFor(() => c.got.length >= 102, 5000, 'a live one after the recovery');
    assert.deepEqual(c.got, Array.from({ length: 102 }, (_, i) => i - 1), 'all of them, in order, none twice');
    // the replayed ones too carry their stream: else the client's position stops at the cut
    assert.deepEqual(c.metas.map((m) => m && m.stream), c.got.map(() => ch), 'every broadcast names its stream');
    const last = c.connects[c.connects.length - 1];
    assert.equal(last.reconnect, true);
    assert.equal(last.restored, true, 'the session was restored (no new subscribe)');
  } finally {
    c.cable.disconnect();
    await px.close();
  }
}

test('Action Cable ext: @anycable/core recovers 100 messages published while its connection was cut', T, async () => {
  const srv = await start({ env: ENV });
  try {
    await recoverScenario([srv], 4242);
    // a plain actioncable-v1-json client sees no position and no sid change
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/cable`, ['actioncable-v1-json'],
      { headers: { Origin: ORIGIN, Authorization: `Bearer ${token('7', { community_member_id: 7 })}` } });
    const msgs = [];
    ws.on('message', (raw) => { const m = JSON.parse(raw); if (m.type !== 'ping') msgs.push(m); });
    await waitFor(() => msgs.length === 1, 5000, 'welcome');
    assert.equal(ws.protocol, 'actioncable-v1-json');
    assert.deepEqual(Object.keys(msgs[0]).sort(), ['sid', 'type']);
    const identifier = JSON.stringify({ channel: 'NotificationChannel', community_member_id: 7 });
    ws.send(JSON.stringify({ command: 'subscribe', identifier }));
    await waitFor(() => msgs.length === 2, 5000, 'confirm');
    await publish(srv, 'notification-channel-7', { n: 1 });
    await waitFor(() => msgs.length === 3, 5000, 'broadcast');
    assert.deepEqual(msgs[2], { identifier, message: { event: 'note', data: { n: 1 } } });
    ws.close();
  } finally {
    await srv.teardown();
  }
});

test('Action Cable ext across two nodes with the Redis broker: it recovers on the other node', T, async () => {
  const redis = await startRedis();
  let cluster;
  try {
    cluster = await startNodes(2, { env: brokerEnv(redis, { WSHUB_CABLE_ALLOWED_ORIGINS: ORIGIN, WSHUB_HISTORY_SIZE: '200' }) });
    await recoverScenario(cluster.nodes, 4343);
    const len = await redis.command(['XLEN', 'wshub:h:notification-channel-4343']);
    assert.equal(Number(len), 102, 'the stream holds every message');
  } finally {
    if (cluster) await cluster.teardown();
    await redis.teardown();
  }
});

// A restored session's subscriptions wait for the client's history command; a client that never
// sends one gets them live after a few seconds (never a subscription that stays silent).
test('Action Cable ext: a restored subscription whose client never asks for history gets its messages live after the wait', T, async () => {
  const srv = await start({ env: { ...ENV, WSHUB_CABLE_PING_INTERVAL_MS: '500' } });
  const member = 5150;
  const identifier = JSON.stringify({ channel: 'NotificationChannel', community_member_id: member });
  const open = (q = '') => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/cable${q}`, ['actioncable-v1-ext-json'],
      { headers: { Origin: ORIGIN, Authorization: `Bearer ${token(String(member), { community_member_id: member })}` } });
    const c = { ws, msgs: [] };
    ws.on('message', (raw) => { const m = JSON.parse(raw); if (m.type !== 'ping') c.msgs.push(m); });
    return c;
  };
  try {
    const a = open();
    await waitFor(() => a.msgs.some((m) => m.type === 'welcome'), 5000, 'welcome');
    const sid = a.msgs.find((m) => m.type === 'welcome').sid;
    a.ws.send(JSON.stringify({ command: 'subscribe', identifier }));
    await waitFor(() => a.msgs.some((m) => m.type === 'confirm_subscription'), 5000, 'confirm');
    a.ws.close();
    await new Promise((r) => a.ws.once('close', r));

    const b = open(`?sid=${sid}`);
    await waitFor(() => b.msgs.some((m) => m.type === 'welcome'), 5000, 'the second welcome');
    const w = b.msgs.find((m) => m.type === 'welcome');
    assert.equal(w.restored, true);
    assert.deepEqual(w.restored_ids, [identifier]);
    const t0 = Date.now();
    await publish(srv, `notification-channel-${member}`, { n: 1 });
    await waitFor(() => b.msgs.some((m) => m.message && m.message.data && m.message.data.n === 1), 10000,
      'the held broadcast, once the wait is over');
    assert.ok(Date.now() - t0 >= 1500, 'held meanwhile (the client did not ask for history)');
    await publish(srv, `notification-channel-${member}`, { n: 2 });
    await waitFor(() => b.msgs.some((m) => m.message && m.message.data && m.message.data.n === 2), 3000, 'live after it');
    const ns = b.msgs.filter((m) => m.message && m.message.data).map((m) => m.message.data.n);
    assert.deepEqual(ns, [1, 2], 'each once, in order');
    b.ws.close();
  } finally {
    await srv.teardown();
  }
});

// The URL's db holds the history (and the sessions): every Redis connection of a node SELECTs it
// before anything else, the broker's as the Flow store's.
test('history in Redis goes to the db of broker.redis_url', T, async () => {
  const redis = await startRedis();
  let cluster;
  try {
    cluster = await startNodes(1, { env: brokerEnv(redis, { WSHUB_REDIS_URL: redis.url.replace(/\/0$/, '/3'),
      WSHUB_HISTORY_SIZE: '50' }) });
    const [a] = cluster.nodes;
    const c = await serviceClient(a, 'dbuser');
    await subscribe(c, 'news:db');
    await publish(a, 'news:db', { n: 1 });
    const inDb = (db) => redis.command(['EVAL', "redis.call('SELECT', ARGV[1]) return redis.call('XLEN', KEYS[1])",
      '1', 'wshub:h:news:db', String(db)]);
    await waitFor(async () => Number(await inDb(3)) === 1, 3000, 'the stream in db 3');
    assert.equal(Number(await inDb(0)), 0, 'nothing in db 0');
    await close(c);
  } finally {
    if (cluster) await cluster.teardown();
    await redis.teardown();
  }
});
