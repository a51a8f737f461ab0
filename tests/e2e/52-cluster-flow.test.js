'use strict';
// Flow (API D) across nodes (issue 13): with broker.type "redis", Flow's tickets and thread
// histories live in Redis (server/dialects/flow/store_redis.c), so GET /socket.info answered
// by node A opens a socket on node B, a ticket is single use across nodes, and
// GET /thread.history is the same from every node. While Redis is down or silent, whatever
// needs the store answers at once in Flow's format (503 {"status":"error",…}, or Flow's error
// message on a socket), never a hang, and the nodes keep running; once Redis is back, Flow works
// again by itself. A client that goes away while its ticket is being redeemed costs nothing
// (run this under ASan: build-asan/wshubd).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const WebSocket = require('ws');

const { startRedis } = require('./lib/redis');
const { startNodes, brokerEnv } = require('./lib/cluster');
const { sleep, within, waitFor, httpRequest, parseMetrics } = require('./lib/util');

const T = { timeout: 90000 };
const CLIENT_ID = 'cluster-flow-client';
const TOKEN_TTL_MS = 2000;

const unique = (p) => `${p}-${crypto.randomBytes(4).toString('hex')}`;

function socketInfo(node, { threadId, timeout = 10000 } = {}) {
  return httpRequest(node, {
    path: '/socket.info', timeout,
    headers: { 'x-flowai-clientid': CLIENT_ID, 'x-flowai-sessionid': unique('session'), 'x-flowai-threadid': threadId || 'null' },
  });
}

async function endpointOf(node, opts) {
  const r = await socketInfo(node, opts);
  assert.equal(r.status, 200, `socket.info on :${node.port}: ${r.status} ${r.text}`);
  assert.equal(r.json.status, 'ok');
  return r.json.payload.endpoint;
}

// The same /ws/<token> on another node (what a load balancer does).
function onNode(endpoint, node) {
  const u = new URL(endpoint);
  u.port = String(node.port);
  return u.toString();
}

function history(node, threadId, unnoticed = false) {
  return httpRequest(node, {
    path: unnoticed ? '/thread.unnoticed' : '/thread.history',
    headers: { 'x-flowai-clientid': CLIENT_ID, 'x-flowai-threadid': threadId },
  });
}

async function historyOk(node, threadId, unnoticed = false) {
  const r = await history(node, threadId, unnoticed);
  assert.equal(r.status, 200, `history on :${node.port}: ${r.status} ${r.text}`);
  assert.equal(r.json.payload.threadId, threadId);
  return r.json.payload[unnoticed ? 'unnoticed' : 'history'];
}

// A Flow socket; .msgs collects every message, next(type) waits for the next one of a type.
class Flow {
  constructor(url, label) {
    this.label = label;
    this.msgs = [];
    this.seen = 0;
    this.ws = new WebSocket(url);
    this.ws.on('message', (d) => this.msgs.push(JSON.parse(d.toString('utf8'))));
    this.ws.on('error', () => {});
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('unexpected-response', (req, res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          req.destroy();
          reject(Object.assign(new Error(`${label}: refused ${res.statusCode}`),
            { status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
        });
      });
      this.ws.once('error', reject);
    });
    this.opened.catch(() => {});
  }

  async next(type, timeout = 5000) {
    let found;
    await waitFor(() => {
      const i = this.msgs.findIndex((m, k) => k >= this.seen && m.type === type);
      if (i < 0) return false;
      found = this.msgs[i];
      this.seen = i + 1;
      return true;
    }, timeout, `${this.label}: ${type}; got ${JSON.stringify(this.msgs)}`);
    return found;
  }

  send(threadId, speech) {
    this.ws.send(JSON.stringify({ type: 'message.send', payload: { threadId, speech, originator: { name: 'Jane' } } }));
  }

  close() { this.ws.close(); }
}

async function open(url, label) {
  const f = new Flow(url, label);
  await within(f.opened, 5000, `${label} to open`);
  return f;
}

// The upgrade of url is refused: { status, body }.
async function refused(url) {
  const f = new Flow(url, 'refused');
  const err = await within(f.opened.then(() => { f.close(); throw new Error(`${url} was accepted`); }, (e) => e), 8000, `the refusal of ${url}`);
  if (!err.status) throw err;
  return { status: err.status, body: err.body ? JSON.parse(err.body) : null };
}

// Redis has both nodes' SUBSCRIBE of the thread's channel.
async function bothSubscribed(redis, threadId) {
  await waitFor(async () => Number((await redis.command(['PUBSUB', 'NUMSUB', `wshub:thread:${threadId}`]))[1]) === 2,
    5000, `both nodes subscribed to thread:${threadId}`);
}

const replyText = (m) => m.payload.messages[0].responses[0].payload.text;

// Both Redis links of every node are up (wshub_flow_store_up and wshub_broker_up 1): until
// then Flow answers 503, and bot replies cannot travel (the links are made after a node
// starts listening, and again after an outage).
async function linksUp(nodes) {
  for (const node of nodes) {
    await waitFor(async () => {
      const m = parseMetrics((await node.get('/metrics')).body);
      return m.wshub_flow_store_up === 1 && m.wshub_broker_up === 1;
    }, 15000, `the Redis links of :${node.port}`);
  }
}

async function flowNodes(redis, env) {
  const cluster = await startNodes(2, { env: brokerEnv(redis, env) });
  await linksUp(cluster.nodes);
  return cluster;
}

test('socket.info on A, socket on B: a message from B is answered on B and on a second socket of the thread on A; the history is the same from A and B', T, async () => {
  const redis = await startRedis();
  const cluster = await flowNodes(redis, { WSHUB_FLOW_TOKEN_TTL_MS: String(TOKEN_TTL_MS) });
  const [a, b] = cluster.nodes;
  try {
    const thread = unique('thread');
    const onB = await open(onNode(await endpointOf(a, { threadId: thread }), b), 'socket on B (ticket from A)');
    const onA = await open(await endpointOf(a, { threadId: thread }), 'socket on A');
    await bothSubscribed(redis, thread);

    onB.send(thread, 'hello from B');
    assert.equal((await onB.next('message.delivered')).payload.speech, 'hello from B');
    const [rb, ra] = await Promise.all([onB.next('message.received'), onA.next('message.received')]);
    assert.ok(replyText(rb).includes('hello from B'), replyText(rb));
    assert.deepEqual(ra, rb, 'the same reply on both nodes');

    onA.send(thread, 'and from A');
    await onA.next('message.delivered');
    await Promise.all([onA.next('message.received'), onB.next('message.received')]);

    // The store is Redis: both nodes answer the same four entries, in the order they happened.
    let ha;
    await waitFor(async () => (ha = await historyOk(a, thread)).length === 4, 3000, 'four entries');
    const hb = await historyOk(b, thread);
    assert.deepEqual(hb, ha, 'the history from B is the history from A');
    assert.deepEqual(ha.map((e) => e.type), ['message.send', 'message.received', 'message.send', 'message.received']);
    assert.equal(ha[0].payload.speech, 'hello from B');
    assert.equal(ha[2].payload.speech, 'and from A');

    // Kept in Redis with the thread's TTL (flow.thread_ttl_s, 3600 s by default).
    const pttl = Number(await redis.command(['PTTL', `wshub:flow:hist:${thread}`]));
    assert.ok(pttl > 3500 * 1000 && pttl <= 3600 * 1000, `PTTL ${pttl}`);

    // thread.noticed on B: nothing unnoticed from A; a publish through B's API is, from A too.
    onB.ws.send(JSON.stringify({ type: 'thread.noticed', payload: { threadId: thread } }));
    await waitFor(async () => (await historyOk(a, thread, true)).length === 0, 3000, 'nothing unnoticed');
    const pub = await httpRequest(b, { method: 'POST', path: '/api/publish',
      headers: { Authorization: `Bearer ${cluster.apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: `thread:${thread}`, event: 'message', data: { text: 'an agent speaks' } }) });
    assert.equal(pub.status, 200, pub.text);
    await Promise.all([onA.next('message.received'), onB.next('message.received')]);
    const un = await historyOk(a, thread, true);
    assert.equal(un.length, 1);
    assert.equal(replyText(un[0]), 'an agent speaks');
    assert.deepEqual(await historyOk(b, thread, true), un);
    onA.close();
    onB.close();
  } finally {
    await cluster.teardown();
    await redis.teardown();
  }
});

test('tickets across nodes: redeemed on B, refused on A and B (404); unused past flow.token_ttl_ms, refused; flow.max_tickets holds for the cluster', T, async () => {
  const redis = await startRedis();
  const cluster = await flowNodes(redis, { WSHUB_FLOW_TOKEN_TTL_MS: String(TOKEN_TTL_MS), WSHUB_FLOW_MAX_TICKETS: '3' });
  const [a, b] = cluster.nodes;
  try {
    const endpoint = await endpointOf(a);
    const s = await open(onNode(endpoint, b), 'redeemed on B');
    for (const url of [endpoint, onNode(endpoint, b)]) {
      const r = await refused(url);
      assert.equal(r.status, 404);
      assert.equal(r.body.status, 'error');
    }
    s.close();

    // Issued on B, tried on A after its TTL: expired.
    const late = await endpointOf(b);
    await sleep(TOKEN_TTL_MS + 300);
    assert.equal((await refused(onNode(late, a))).status, 404);

    // Three unused tickets in the cluster (two from A, one from B): the fourth, on either
    // node, is refused; redeeming one makes room again.
    const held = [await endpointOf(a), await endpointOf(a), await endpointOf(b)];
    for (const node of [a, b]) {
      const r = await socketInfo(node);
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json.status, 'error');
      assert.match(r.json.payload.message, /max_tickets/);
    }
    const t = await open(onNode(held[0], b), 'one of the three');
    await endpointOf(a);
    t.close();
  } finally {
    await cluster.teardown();
    await redis.teardown();
  }
});

test('Redis down: socket.info, the history and an upgrade answer 503 in Flow\'s format at once, a message is delivered with Flow\'s error; Redis back: Flow works again', T, async () => {
  const redis = await startRedis();
  const cluster = await flowNodes(redis, { WSHUB_BROKER_RECONNECT_MAX_MS: '500' });
  const [a, b] = cluster.nodes;
  try {
    const thread = unique('thread');
    const kept = await endpointOf(a); // issued before the outage
    const s = await open(await endpointOf(b, { threadId: thread }), 'open through the outage');
    await redis.stop();
    await waitFor(async () => (await socketInfo(a)).status === 503, 5000, 'socket.info refused');
    for (const node of [a, b]) {
      const t0 = Date.now();
      const r = await socketInfo(node);
      assert.ok(Date.now() - t0 < 1000, `answered in ${Date.now() - t0} ms`);
      assert.equal(r.status, 503);
      assert.equal(r.headers['retry-after'], '1');
      assert.equal(r.json.status, 'error');
      assert.match(r.json.payload.message, /unreachable/);
      const h = await history(node, thread);
      assert.equal(h.status, 503);
      assert.equal(h.json.status, 'error');
    }
    const up = await refused(onNode(kept, b));
    assert.equal(up.status, 503);
    assert.equal(up.body.status, 'error');
    // The socket stays open: its message is delivered, and Flow's error says it was not kept.
    s.send(thread, 'while down');
    await s.next('message.delivered');
    assert.match((await s.next('error')).message, /not kept/);
    for (const node of [a, b]) assert.equal((await httpRequest(node, { path: '/healthz' })).status, 200);

    await redis.start();
    await linksUp([a, b]);
    await waitFor(async () => (await socketInfo(a)).status === 200 && (await socketInfo(b)).status === 200,
      10000, 'socket.info answered again on both nodes');
    const thread2 = unique('thread');
    const s2 = await open(onNode(await endpointOf(b, { threadId: thread2 }), a), 'after the outage');
    s2.send(thread2, 'back again');
    await s2.next('message.delivered');
    await s2.next('message.received');
    await waitFor(async () => (await historyOk(b, thread2)).length === 2, 3000, 'the history on B');
    s.close();
    s2.close();
  } finally {
    await cluster.teardown();
    await redis.teardown();
  }
});

// A raw upgrade request for /ws/<token>: resolves the socket once the request is written.
function rawUpgrade(node, url) {
  const { pathname } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(node.port, '127.0.0.1', () => {
      sock.write(`GET ${pathname} HTTP/1.1\r\nHost: 127.0.0.1:${node.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n\r\n`);
      resolve(sock);
    });
    sock.on('error', reject);
  });
}

test('a silent Redis: upgrades and socket.info wait at most a few seconds, then 503; clients that leave mid-redeem cost nothing; Redis moving again: Flow works', T, async () => {
  const redis = await startRedis();
  // A handshake deadline shorter than the store's reply timeout (5 s): the server itself
  // closes some upgrades while their redeem is still awaited.
  const cluster = await flowNodes(redis, { WSHUB_HTTP_HANDSHAKE_TIMEOUT_MS: '1500', WSHUB_BROKER_RECONNECT_MAX_MS: '500' });
  const [a, b] = cluster.nodes;
  let stopped = false;
  try {
    const tickets = [await endpointOf(a), await endpointOf(a), await endpointOf(b)];
    process.kill(redis.pid, 'SIGSTOP');
    stopped = true;
    // One client hangs up at once, one after 300 ms, one waits for the server.
    const gone = await rawUpgrade(b, tickets[0]);
    gone.destroy();
    const late = await rawUpgrade(b, tickets[1]);
    setTimeout(() => late.destroy(), 300);
    const waiting = await rawUpgrade(a, tickets[2]);
    const waited = new Promise((resolve) => {
      let text = '';
      waiting.on('data', (d) => { text += d.toString('latin1'); });
      waiting.on('close', () => resolve(text));
    });
    const t0 = Date.now();
    const info = await socketInfo(b, { timeout: 15000 });
    assert.equal(info.status, 503, info.text);
    assert.equal(info.json.status, 'error');
    assert.ok(Date.now() - t0 < 8000, `socket.info answered after ${Date.now() - t0} ms`);
    const text = await within(waited, 10000, 'the waiting upgrade to end');
    // Closed by the handshake deadline (nothing sent), or refused 503: never a 101.
    assert.ok(text === '' || text.startsWith('HTTP/1.1 503'), JSON.stringify(text));

    process.kill(redis.pid, 'SIGCONT');
    stopped = false;
    await linksUp([a, b]);
    await waitFor(async () => (await socketInfo(b)).status === 200, 15000, 'socket.info answered again');
    const thread = unique('thread');
    const s = await open(onNode(await endpointOf(b, { threadId: thread }), a), 'after the silence');
    s.send(thread, 'still here');
    await s.next('message.received');
    s.close();
    for (const node of [a, b]) assert.equal((await httpRequest(node, { path: '/healthz' })).status, 200);
  } finally {
    if (stopped) process.kill(redis.pid, 'SIGCONT');
    await cluster.teardown();
    await redis.teardown();
  }
});
