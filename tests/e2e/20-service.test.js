'use strict';
// API B — the WebSocket Service API at /api/ws (PROTOCOLS.md §0, §B) and the server API
// POST /api/publish, beyond the shared acceptance tests (shared/acceptance/tests/15-, 20-):
// the seed document's own client, a 1,000 x 1,000 fan-out across 2 workers, every token
// refusal with its counter, public-key algorithms and key confusion, the leeway, channel
// authorization (globs, default policy, subscription limit), chat_message validation,
// publish validation and limits, slow consumers on fan-out, SIGHUP key reload, and the
// publish/delivery metrics. Each server is a private wshubd (lib/server.js); every wait is
// bounded, and event-driven where the server gives an event to wait for.
//   WSHUB_BIN   the binary under test (e.g. build-asan/wshubd)
const { test, describe, before, after } = require('node:test');
const { sleep, within, waitFor, now, httpRequest, parseMetrics } = require('./lib/util');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const WebSocket = require('ws');

const { start } = require('./lib/server');

const SECRET = 'e2e-service-secret-4f1c9a7d2b';
const API_KEY = 'e2e-service-api-key-77c1';
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const T = { timeout: 30000 };
const SEED_CLIENT = path.join(__dirname, 'clients', 'service-seed-client.js');

// Only what a test sets: no WSHUB_* from the caller's environment leaks into a server.
const BASE_ENV = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('WSHUB_') && k !== 'WSHUB_BIN')
  .map((k) => [k, undefined]));
function serverEnv(extra = {}) {
  const env = { ...BASE_ENV, WSHUB_WORKERS: '2', WSHUB_JWT_SECRET: SECRET, WSHUB_API_KEY: API_KEY, ...extra };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return env;
}
async function startServer(opts = {}) {
  // start() spreads process.env first: strip inherited WSHUB_* (a caller's secret) from it.
  const saved = {};
  for (const k of Object.keys(BASE_ENV)) { saved[k] = process.env[k]; delete process.env[k]; }
  try {
    return await start({ ...opts, env: serverEnv(opts.env) });
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
  }
}

let uniq = 0;
const unique = (p) => `${p}-${process.pid}-${++uniq}-${crypto.randomBytes(3).toString('hex')}`;


// ------------------------------------------------------------------ JWTs, by hand

const b64u = (x) => Buffer.from(x).toString('base64url');
const signingInput = (header, payload) => `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
const HASH = { 256: 'sha256', 384: 'sha384', 512: 'sha512' };

function hs(payload, { secret = SECRET, alg = 'HS256', header = {} } = {}) {
  const input = signingInput({ alg, typ: 'JWT', ...header }, payload);
  return `${input}.${crypto.createHmac(HASH[alg.slice(2)], secret).update(input).digest('base64url')}`;
}
function rs(payload, privateKey, { alg = 'RS256' } = {}) {
  const input = signingInput({ alg, typ: 'JWT' }, payload);
  return `${input}.${crypto.sign(HASH[alg.slice(2)], Buffer.from(input), privateKey).toString('base64url')}`;
}
function es(payload, privateKey, { alg = 'ES256', dsaEncoding = 'ieee-p1363' } = {}) {
  const input = signingInput({ alg, typ: 'JWT' }, payload);
  return `${input}.${crypto.sign(HASH[alg.slice(2)], Buffer.from(input), { key: privateKey, dsaEncoding }).toString('base64url')}`;
}
const claims = (sub, extra = {}) => ({ sub, iat: now(), exp: now() + 600, ...extra });
const token = (sub, extra = {}) => hs(claims(sub, extra));

// ------------------------------------------------------------------ HTTP helpers

const agents = new Set();
function agentFor(inst) {
  if (!inst.agent) { inst.agent = new http.Agent({ keepAlive: true, maxSockets: 4 }); agents.add(inst.agent); }
  return inst.agent;
}

// One HTTP request; resolves {status, headers, body, json}.
function request(inst, { method = 'GET', path: p = '/', headers = {}, body, agent } = {}) {
  return httpRequest(inst, { method, path: p, headers, body, agent: agent === undefined ? agentFor(inst) : agent });
}

function publish(inst, body, { key = API_KEY, method = 'POST', headers = {} } = {}) {
  return request(inst, { method, path: '/api/publish', body, headers: { ...(key ? { Authorization: `Bearer ${key}` } : {}), ...headers } });
}
async function publishOk(inst, body) {
  const r = await publish(inst, body);
  assert.equal(r.status, 200, `publish ${JSON.stringify(body).slice(0, 200)} -> ${r.status} ${r.body}`);
  assert.equal(r.json.ok, true, r.body);
  return r.json;
}

// Every sample of /metrics as {'name{labels}': value}.
async function metrics(inst) {
  const r = await request(inst, { path: '/metrics', agent: false });
  assert.equal(r.status, 200, `/metrics -> ${r.status}`);
  return parseMetrics(r.body);
}
const authKey = (reason) => `wshub_auth_failures_total{reason="${reason}"}`;
function authDiff(before, after) {
  const moved = {};
  for (const k of Object.keys(after)) {
    if (k.startsWith('wshub_auth_failures_total{') && after[k] !== before[k]) moved[/reason="([^"]*)"/.exec(k)[1]] = after[k] - (before[k] || 0);
  }
  return moved;
}

// A WebSocket upgrade request that is expected to be refused: resolves {status, body, json}
// (status 101 if the server upgraded after all).
function upgradeRequest(inst, p, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: inst.port, path: p, agent: false, timeout: 5000, headers: {
      Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'), ...headers } });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve({ status: 101, headers: res.headers, body: '', json: null }); });
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
    req.on('timeout', () => req.destroy(new Error(`upgrade ${p}: no answer within 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

function assertUnauthorized401(r, what) {
  assert.equal(r.status, 401, `${what}: expected 401, got ${r.status} ${r.body}`);
  assert.ok(r.json, `${what}: the 401 body must be JSON: ${JSON.stringify(r.body)}`);
  assert.deepEqual(Object.keys(r.json).sort(), ['data', 'timestamp', 'type'], `${what}: ${r.body}`);
  assert.equal(r.json.type, 'error', r.body);
  assert.equal(r.json.data.code, 'unauthorized', r.body);
  assert.equal(typeof r.json.data.message, 'string', r.body);
  assert.ok(r.json.data.message.length > 0, r.body);
  assert.match(r.json.timestamp, ISO_UTC, r.body);
  assert.ok(Math.abs(Date.parse(r.json.timestamp) - Date.now()) < 60000, `timestamp is about now: ${r.body}`);
  assert.match(String(r.headers['content-type']), /json/, `${what}: content-type ${r.headers['content-type']}`);
}

// Refused with 401 + the documented body, and counted under exactly `reason` (one of `reasons`).
async function expectRefused(inst, { query, headers = {}, reasons, what }) {
  const want = Array.isArray(reasons) ? reasons : [reasons];
  const before = await metrics(inst);
  const p = query === undefined ? '/api/ws' : `/api/ws?token=${encodeURIComponent(query)}`;
  const r = await upgradeRequest(inst, p, headers);
  assertUnauthorized401(r, what);
  const moved = await waitFor(async () => {
    const d = authDiff(before, await metrics(inst));
    return Object.keys(d).length ? d : null;
  }, 2000, `wshub_auth_failures_total to move (${what})`);
  assert.equal(Object.keys(moved).length, 1, `${what}: exactly one reason should move, got ${JSON.stringify(moved)}`);
  const [reason, by] = Object.entries(moved)[0];
  assert.ok(want.includes(reason), `${what}: counted as ${reason}, expected ${want.join(' or ')} (message: ${r.json.data.message})`);
  assert.equal(by, 1, `${what}: the counter must move by exactly 1, moved ${by}`);
  const hsKey = 'wshub_handshake_failures_total{reason="unauthorized"}';
  const hsMoved = (await metrics(inst))[hsKey] - before[hsKey];
  assert.equal(hsMoved, 1, `${what}: ${hsKey} should move by 1, moved ${hsMoved}`);
  return { reason, message: r.json.data.message };
}

// ------------------------------------------------------------------ WebSocket client

function assertEnvelope(m) {
  assert.equal(typeof m.type, 'string', `type: ${JSON.stringify(m)}`);
  assert.ok(m.data && typeof m.data === 'object' && !Array.isArray(m.data), `data object: ${JSON.stringify(m)}`);
  assert.match(String(m.timestamp), ISO_UTC, `timestamp: ${JSON.stringify(m)}`);
}

class Svc {
  constructor(ws, label) {
    this.ws = ws;
    this.label = label;
    this.queue = [];
    this.waiters = new Set();
    this.closeInfo = null;
    ws.on('message', (d, isBinary) => {
      const text = d.toString('utf8');
      let m;
      try { m = JSON.parse(text); } catch { m = { unparseable: text, isBinary }; }
      this.queue.push(m);
      this.wake();
    });
    ws.on('close', (code, reason) => { this.closeInfo = { code, reason: reason.toString() }; this.wake(); });
    ws.on('error', (e) => { this.error = e; this.wake(); });
  }

  static open(url, { headers = {}, label = url, timeout = 10000 } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers, perMessageDeflate: false, handshakeTimeout: timeout });
      const c = new Svc(ws, label);
      ws.once('open', () => resolve(c));
      ws.once('unexpected-response', (req, res) => {
        const chunks = [];
        res.on('data', (x) => chunks.push(x));
        res.on('end', () => reject(new Error(`${label}: upgrade refused ${res.statusCode} ${Buffer.concat(chunks)}`)));
      });
      ws.once('error', (e) => reject(new Error(`${label}: ${e.message}`)));
    });
  }

  wake() { for (const w of [...this.waiters]) w(); }

  next({ timeout = 5000, what = 'a message' } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.queue.length) { done(); resolve(this.queue.shift()); return; }
        if (this.closeInfo) { done(); reject(new Error(`${this.label}: closed ${JSON.stringify(this.closeInfo)} while waiting for ${what}`)); }
      };
      const t = setTimeout(() => { done(); reject(new Error(`${this.label}: timed out after ${timeout} ms waiting for ${what}`)); }, timeout);
      const done = () => { clearTimeout(t); this.waiters.delete(check); };
      this.waiters.add(check);
      check();
    });
  }

  send(m) { this.ws.send(typeof m === 'string' ? m : JSON.stringify(m)); }

  async expect(type, opts = {}) {
    const m = await this.next({ what: `a ${type} message`, ...opts });
    assertEnvelope(m);
    assert.equal(m.type, type, `${this.label}: expected ${type}, got ${JSON.stringify(m)}`);
    return m;
  }

  async expectError(code, opts) {
    const m = await this.expect('error', opts);
    assert.equal(m.data.code, code, `${this.label}: ${JSON.stringify(m)}`);
    assert.equal(typeof m.data.message, 'string');
    return m;
  }

  async subscribe(channel) {
    this.send({ type: 'subscribe', data: { channel } });
    const m = await this.expect('subscribed');
    assert.equal(m.data.channel, channel);
    return m;
  }

  // Sends a ping and resolves every message that arrived before its pong.
  async fence(timeout = 5000) {
    this.send({ type: 'ping', data: {} });
    const seen = [];
    for (;;) {
      const m = await this.next({ timeout, what: 'the pong of a fence' });
      if (m.type === 'pong') return seen;
      seen.push(m);
    }
  }

  waitClose(timeout = 5000) {
    return new Promise((resolve, reject) => {
      const check = () => { if (this.closeInfo) { done(); resolve(this.closeInfo); } };
      const t = setTimeout(() => { done(); reject(new Error(`${this.label}: not closed within ${timeout} ms`)); }, timeout);
      const done = () => { clearTimeout(t); this.waiters.delete(check); };
      this.waiters.add(check);
      check();
    });
  }

  async shut() {
    if (this.closeInfo) return;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    try { await this.waitClose(3000); } catch { this.ws.terminate(); }
  }
}

const svcUrl = (inst, tok) => `${inst.wsUrl}/api/ws${tok === undefined ? '' : `?token=${encodeURIComponent(tok)}`}`;
const connect = (inst, sub = unique('user'), extra = {}) => Svc.open(svcUrl(inst, token(sub, extra)), { label: `service ${sub}` });

async function shutAll(list) { await Promise.all(list.filter(Boolean).map((c) => c.shut())); }

// ------------------------------------------------------------------ raw sockets

// Pipelined HTTP/1.1 on one keep-alive connection: responses come back in request order.
class RawHttp {
  constructor(port) {
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.setNoDelay(true);
    this.buf = Buffer.alloc(0);
    this.pending = [];
    this.connected = new Promise((resolve, reject) => { this.sock.once('connect', resolve); this.sock.once('error', reject); });
    this.sock.on('data', (d) => { this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d; this.parse(); });
    const fail = (e) => { for (const p of this.pending.splice(0)) p.reject(e); };
    this.sock.on('error', fail);
    this.sock.on('close', () => fail(new Error('publisher connection closed')));
  }

  parse() {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.buf.subarray(0, end).toString('latin1');
      const m = /content-length:\s*(\d+)/i.exec(head);
      if (!m) { this.sock.destroy(new Error(`response without Content-Length: ${head}`)); return; }
      const total = end + 4 + Number(m[1]);
      if (this.buf.length < total) return;
      const status = Number(head.split(' ')[1]);
      const body = this.buf.subarray(end + 4, total).toString('utf8');
      this.buf = this.buf.subarray(total);
      const p = this.pending.shift();
      if (p) p.resolve({ status, body });
    }
  }

  post(pathq, obj, key) {
    const body = Buffer.from(JSON.stringify(obj));
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.sock.write(Buffer.concat([Buffer.from(`POST ${pathq} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`), body]));
    });
  }

  close() { this.sock.destroy(); }
}

// A client frame (masked, FIN set).
function clientFrame(opcode, payload) {
  const data = Buffer.from(payload);
  const mask = crypto.randomBytes(4);
  let head;
  if (data.length < 126) head = Buffer.from([0x80 | opcode, 0x80 | data.length]);
  else { head = Buffer.alloc(4); head[0] = 0x80 | opcode; head[1] = 0x80 | 126; head.writeUInt16BE(data.length, 2); }
  const masked = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) masked[i] = data[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, masked]);
}

// A WebSocket client on a raw socket: it reads only when told to, so it can play a peer that
// never reads. Counts text frames, keeps the close frame.
class RawWs {
  constructor(port) {
    this.sock = net.connect(port, '127.0.0.1');
    this.connected = new Promise((resolve, reject) => { this.sock.once('connect', resolve); this.sock.once('error', reject); });
    this.connected.catch(() => {});
    this.buf = Buffer.alloc(0);
    this.head = null;
    this.texts = [];
    this.textCount = 0;
    this.closeFrame = null;
    this.ended = false;
    this.closed = false;
    this.waiters = new Set();
    this.sock.on('data', (d) => { this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d; this.parse(); this.wake(); });
    this.sock.on('end', () => { this.ended = true; this.wake(); });
    this.sock.on('error', (e) => { this.error = e; this.wake(); });
    this.sock.on('close', () => { this.closed = true; this.wake(); });
  }

  wake() { for (const w of [...this.waiters]) w(); }

  waitFor(pred, timeout, what) {
    return new Promise((resolve, reject) => {
      const check = () => { const v = pred(); if (v) { done(); resolve(v); } };
      const t = setTimeout(() => { done(); reject(new Error(`raw ws: timed out after ${timeout} ms waiting for ${what}`)); }, timeout);
      const done = () => { clearTimeout(t); this.waiters.delete(check); };
      this.waiters.add(check);
      check();
    });
  }

  parse() {
    if (!this.head) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.head = this.buf.subarray(0, end).toString('latin1');
      this.buf = this.buf.subarray(end + 4);
    }
    for (;;) {
      if (this.buf.length < 2) return;
      const op = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f, off = 2;
      if (len === 126) { if (this.buf.length < 4) return; len = this.buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (this.buf.length < 10) return; len = Number(this.buf.readBigUInt64BE(2)); off = 10; }
      if (this.buf.length < off + len) return;
      const payload = this.buf.subarray(off, off + len);
      this.buf = this.buf.subarray(off + len);
      if (op === 1) { this.textCount++; if (this.texts.length < 8) this.texts.push(payload.toString('utf8')); }
      else if (op === 8) this.closeFrame = { code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005, reason: payload.subarray(2).toString('utf8') };
    }
  }

  async handshake(pathq) {
    await within(this.connected, 5000, 'the raw ws connection');
    this.sock.write(`GET ${pathq} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await this.waitFor(() => this.head || this.closed, 5000, 'the 101');
    assert.match(String(this.head), /^HTTP\/1\.1 101 /, `raw ws handshake: ${this.head}`);
  }

  sendText(s) { this.sock.write(clientFrame(1, s)); }
}

// ================================================================== the main server

let srv;
before(async () => { srv = await startServer(); });
after(async () => {
  for (const a of agents) a.destroy();
  if (srv) await srv.teardown();
});

// ------------------------------------------------------------------ the seed document's client

test('the seed document\'s client (clients/service-seed-client.js): subscribed, pong, and the three documented events', T, async () => {
  const sub = unique('seed-user');
  const channel = 'conversation:conv-123';
  const child = spawn(process.execPath, [SEED_CLIENT, `${srv.wsUrl}/api/ws`, token(sub), channel], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines = [];
  let stderr = '';
  let exit = null;
  const waiters = new Set();
  const wake = () => { for (const w of [...waiters]) w(); };
  let partial = '';
  child.stdout.on('data', (d) => {
    partial += d.toString('utf8');
    const parts = partial.split('\n');
    partial = parts.pop();
    for (const l of parts) lines.push(l.split('\t'));
    wake();
  });
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => { exit = { code, signal }; wake(); resolve(exit); }));
  const waitLine = (label, timeout = 10000) => new Promise((resolve, reject) => {
    const check = () => {
      const l = lines.find((x) => x[0] === label);
      if (l) { done(); resolve(l); } else if (exit) { done(); reject(new Error(`seed client exited ${JSON.stringify(exit)} before ${label}: ${JSON.stringify(lines)} ${stderr}`)); }
    };
    const t = setTimeout(() => { done(); reject(new Error(`no ${label} line within ${timeout} ms: ${JSON.stringify(lines)} ${stderr}`)); }, timeout);
    const done = () => { clearTimeout(t); waiters.delete(check); };
    waiters.add(check);
    check();
  });
  const msgOf = (l) => { const m = JSON.parse(l[1]); assertEnvelope(m); return m; };
  try {
    await waitLine('OPEN');
    assert.deepEqual(msgOf(await waitLine('SUBSCRIBED')).data, { channel });
    assert.deepEqual(msgOf(await waitLine('PONG')).data, {});

    const docs = {
      notification: { message: 'New comment on your post', level: 'info' },
      chat_message: { conversation_id: 'conv-123', sender_id: 'user-456', content: 'Hello there!' },
      status_update: { entity_type: 'task', entity_id: 'task-789', status: 'completed' },
    };
    assert.equal((await publishOk(srv, { channel: `user:${sub}`, event: 'notification', data: docs.notification })).delivered, 1);
    assert.equal((await publishOk(srv, { channel, event: 'chat_message', data: docs.chat_message })).delivered, 1);
    assert.equal((await publishOk(srv, { channel, event: 'status_update', data: docs.status_update })).delivered, 1);

    const n = await waitLine('NOTIFICATION');
    assert.deepEqual(msgOf(n).data, docs.notification);
    assert.equal(n[2], 'info: New comment on your post');
    const c = await waitLine('CHAT_MESSAGE');
    assert.deepEqual(msgOf(c).data, docs.chat_message);
    assert.equal(c[2], '[conv-123] user-456: Hello there!');
    const s = await waitLine('STATUS_UPDATE');
    assert.deepEqual(msgOf(s).data, docs.status_update);
    assert.equal(s[2], 'task task-789 is completed');
    const order = lines.map((l) => l[0]).filter((x) => /^(NOTIFICATION|CHAT_MESSAGE|STATUS_UPDATE)$/.test(x));
    assert.deepEqual(order, ['NOTIFICATION', 'CHAT_MESSAGE', 'STATUS_UPDATE'], 'each event exactly once, in publish order');
    const odd = lines.filter((l) => /^(ERROR|UNKNOWN|UNPARSEABLE|CLOSE|RECONNECT|SOCKET_ERROR|GIVE_UP)$/.test(l[0]));
    assert.deepEqual(odd, [], 'the seed client saw nothing unexpected');
  } finally {
    child.stdin.end();
    const info = await within(exited, 5000, 'the seed client to exit').catch((e) => { child.kill('SIGKILL'); throw e; });
    assert.deepEqual(info, { code: 0, signal: null }, `seed client exit; stderr: ${stderr}`);
  }
  assert.deepEqual(lines.find((l) => l[0] === 'CLOSE'), ['CLOSE', '1000', 'bye'], 'a clean close handshake');
});

// ------------------------------------------------------------------ 1,000 x 1,000

test('1,000 subscribers on one channel across 2 workers each receive all 1,000 published events, in order, once', { timeout: 180000 }, async (t) => {
  const N_SUBS = 1000, N_EVENTS = 1000, CONCURRENCY = 50, WINDOW = 64;
  const channel = `bulk:${unique('fanout')}`;
  const url = `${srv.wsUrl}/api/ws?token=`;
  const clients = new Array(N_SUBS);
  let complete = 0;
  const problems = [];
  let onProgress = () => {};
  const t0 = performance.now();

  function openOne(i) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url + token(`bulk-${i}`), { perMessageDeflate: false, handshakeTimeout: 20000 });
      const c = { ws, next: 0, subscribed: false, closed: false };
      clients[i] = c;
      const timer = setTimeout(() => reject(new Error(`subscriber ${i}: not subscribed within 20 s`)), 20000);
      ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', data: { channel } })));
      ws.on('message', (d) => {
        const m = JSON.parse(d);
        if (!c.subscribed) {
          if (m.type !== 'subscribed' || m.data.channel !== channel) { problems.push(`subscriber ${i}: first message ${d}`); return; }
          c.subscribed = true;
          clearTimeout(timer);
          resolve();
          return;
        }
        if (m.type !== 'tick' || !m.data || m.data.seq !== c.next) {
          if (problems.length < 20) problems.push(`subscriber ${i}: expected seq ${c.next}, got ${String(d).slice(0, 120)}`);
          c.bad = true;
          return;
        }
        c.next++;
        if (c.next === N_EVENTS) { complete++; onProgress(); }
      });
      ws.on('close', (code) => { c.closed = true; if (!c.done && c.subscribed && c.next < N_EVENTS && problems.length < 20) problems.push(`subscriber ${i}: closed ${code} at seq ${c.next}`); onProgress(); });
      ws.on('error', (e) => { clearTimeout(timer); reject(new Error(`subscriber ${i}: ${e.message}`)); });
    });
  }

  const pub = new RawHttp(srv.port);
  try {
    let nextIdx = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (nextIdx < N_SUBS) await openOne(nextIdx++);
    }));
    const tOpen = performance.now();
    assert.deepEqual(problems, []);

    const m0 = await metrics(srv);
    await pub.connected;
    const allDelivered = new Promise((resolve, reject) => {
      onProgress = () => {
        if (complete === N_SUBS) resolve();
        else if (problems.length) reject(new Error(problems.join('\n')));
      };
    });
    allDelivered.catch(() => {});
    const answers = [];
    let inflight = [];
    for (let seq = 0; seq < N_EVENTS; seq++) {
      inflight.push(pub.post('/api/publish', { channel, event: 'tick', data: { seq, pad: 'x'.repeat(32) } }, API_KEY));
      if (inflight.length >= WINDOW) { answers.push(...await Promise.all(inflight)); inflight = []; }
    }
    answers.push(...await Promise.all(inflight));
    const tPublished = performance.now();
    for (const [i, a] of answers.entries()) {
      assert.equal(a.status, 200, `publish ${i}: ${a.status} ${a.body}`);
      assert.deepEqual(JSON.parse(a.body), { ok: true, delivered: N_SUBS }, `publish ${i}`);
    }
    await within(allDelivered, 90000, `every subscriber to receive ${N_EVENTS} events`).catch((e) => {
      const lag = clients.map((c) => c.next).sort((a, b) => a - b);
      throw new Error(`${e.message}: ${complete}/${N_SUBS} complete; least received ${lag[0]}, median ${lag[N_SUBS >> 1]}; problems: ${problems.join('; ')}`);
    });
    const tDone = performance.now();
    assert.deepEqual(problems, []);
    for (const c of clients) { assert.equal(c.next, N_EVENTS); assert.ok(!c.bad); c.done = true; }

    // Nothing extra (a duplicate would arrive before this pong).
    await Promise.all(clients.slice(0, 20).map((c) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('fence pong not received')), 10000);
      c.ws.removeAllListeners('message');
      c.ws.on('message', (d) => {
        const m = JSON.parse(d);
        if (m.type === 'pong') { clearTimeout(timer); resolve(); } else reject(new Error(`extra message after the last event: ${d}`));
      });
      c.ws.send('{"type":"ping"}');
    })));

    const m1 = await waitFor(async () => {
      const m = await metrics(srv);
      return m.wshub_deliveries_total - m0.wshub_deliveries_total >= N_SUBS * N_EVENTS ? m : null;
    }, 5000, 'wshub_deliveries_total to count every delivery');
    assert.equal(m1.wshub_publishes_total - m0.wshub_publishes_total, N_EVENTS);
    assert.equal(m1.wshub_deliveries_total - m0.wshub_deliveries_total, N_SUBS * N_EVENTS);

    const s = (a, b) => ((b - a) / 1000).toFixed(2);
    const report = `1000x1000: open+subscribe ${s(t0, tOpen)} s, publish ${s(tOpen, tPublished)} s, ` +
      `all delivered ${s(tOpen, tDone)} s after the first publish, total ${s(t0, tDone)} s`;
    t.diagnostic(report);
    process.stderr.write(`# ${report}\n`);
    assert.ok(tDone - t0 < 60000, `the 1,000 x 1,000 run should take under 60 s: ${report}`);
  } finally {
    pub.close();
    for (const c of clients) if (c) { c.done = true; c.ws.terminate(); }
  }
});

// ------------------------------------------------------------------ token refusals

describe('token refusals: 401 with the documented body, counted under one reason', () => {
  const sub = 'refused-user';
  const cases = [
    ['alg "none" with an empty signature (unsecured JWS)', () => `${signingInput({ alg: 'none', typ: 'JWT' }, claims(sub))}.`, ['malformed', 'alg_not_allowed']],
    ['alg "none" with a signature part', () => `${signingInput({ alg: 'none', typ: 'JWT' }, claims(sub))}.${b64u('sig')}`, 'alg_not_allowed'],
    ['alg "None" (case variant) with the HS256 signature', () => {
      const input = signingInput({ alg: 'None', typ: 'JWT' }, claims(sub));
      return `${input}.${crypto.createHmac('sha256', SECRET).update(input).digest('base64url')}`;
    }, 'alg_not_allowed'],
    ['alg "hs256" (wrong case) with a valid HS256 signature', () => {
      const input = signingInput({ alg: 'hs256', typ: 'JWT' }, claims(sub));
      return `${input}.${crypto.createHmac('sha256', SECRET).update(input).digest('base64url')}`;
    }, 'alg_not_allowed'],
    ['HS512 with the right secret when only HS256 is configured', () => hs(claims(sub), { alg: 'HS512' }), 'alg_not_allowed'],
    ['wrong HMAC key', () => hs(claims(sub), { secret: `${SECRET}-not` }), 'bad_signature'],
    ['payload changed after signing', () => {
      const [h, , sig] = token(sub).split('.');
      return `${h}.${b64u(JSON.stringify(claims('admin')))}.${sig}`;
    }, 'bad_signature'],
    ['exp in the past (60 s)', () => token(sub, { exp: now() - 60, iat: now() - 120 }), 'expired'],
    ['exp just past the leeway (6 s)', () => token(sub, { exp: now() - 6, iat: now() - 120 }), 'expired'],
    ['nbf in the future beyond the 5 s leeway (60 s)', () => token(sub, { nbf: now() + 60 }), 'not_yet_valid'],
    ['nbf 10 s in the future', () => token(sub, { nbf: now() + 10 }), 'not_yet_valid'],
    ['no exp (auth.require_exp defaults to true)', () => hs({ sub, iat: now() }), 'no_exp'],
    ['exp not a number', () => token(sub, { exp: 'tomorrow' }), 'malformed'],
    ['garbage', () => 'not-a-jwt', 'malformed'],
    ['three parts of garbage', () => 'abc.def.ghi', 'malformed'],
    ['a JWT with 2 parts', () => token(sub).split('.').slice(0, 2).join('.'), 'malformed'],
    ['a JWT with 4 parts', () => `${token(sub)}.${b64u('x')}`, 'malformed'],
    ['a header that is not JSON', () => { const [, p, s] = token(sub).split('.'); return `${b64u('{"alg":')}.${p}.${s}`; }, 'malformed'],
  ];
  for (const [what, mk, reason] of cases) {
    test(`?token=: ${what} -> 401, reason ${[].concat(reason).join('|')}`, T, async () => {
      await expectRefused(srv, { query: mk(), reasons: reason, what });
    });
  }
  test('a valid token without sub -> 401 (counted malformed)', T, async () => {
    await expectRefused(srv, { query: hs({ iat: now(), exp: now() + 600 }), reasons: 'malformed', what: 'no sub' });
  });
  test('an invalid token in Authorization: Bearer (wrong key) -> 401 bad_signature', T, async () => {
    await expectRefused(srv, { headers: { Authorization: `Bearer ${hs(claims(sub), { secret: 'wrong' })}` }, reasons: 'bad_signature', what: 'bearer wrong key' });
  });
  test('an expired token in Authorization: Bearer -> 401 expired', T, async () => {
    await expectRefused(srv, { headers: { Authorization: `Bearer ${token(sub, { exp: now() - 60 })}` }, reasons: 'expired', what: 'bearer expired' });
  });
  test('garbage in Authorization: Bearer -> 401 malformed', T, async () => {
    await expectRefused(srv, { headers: { Authorization: 'Bearer garbage' }, reasons: 'malformed', what: 'bearer garbage' });
  });
  test('no token at all -> 401 missing; an empty ?token= and a Basic header count as missing too', T, async () => {
    await expectRefused(srv, { reasons: 'missing', what: 'no token' });
    await expectRefused(srv, { query: '', reasons: 'missing', what: 'empty ?token=' });
    await expectRefused(srv, { headers: { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, reasons: 'missing', what: 'Basic header' });
  });
  test('?token= wins over the header: an invalid query token is refused even with a valid Bearer header', T, async () => {
    await expectRefused(srv, { query: 'garbage', headers: { Authorization: `Bearer ${token(sub)}` }, reasons: 'malformed', what: 'query beats header' });
  });
  test('the refusals left the server serving: a valid token connects', T, async () => {
    const c = await connect(srv, sub);
    try { assert.deepEqual((await c.fence()), []); } finally { await c.shut(); }
  });
});

// ------------------------------------------------------------------ more about tokens and channels

test('the configured secrets (WSHUB_JWT_SECRET, WSHUB_API_KEY) are not written to the log', T, async () => {
  // A server configured by environment only (no config file, as in a container) prints the
  // "embedded default" banner; it must not print real secrets, nor a token minted with them.
  const log = srv.log();
  assert.ok(!log.includes(SECRET), `the JWT secret from WSHUB_JWT_SECRET appears in the log:\n${log.split('\n').filter((l) => l.includes(SECRET)).join('\n')}`);
  assert.ok(!log.includes(API_KEY), `the API key from WSHUB_API_KEY appears in the log:\n${log.split('\n').filter((l) => l.includes(API_KEY)).join('\n')}`);
  const minted = log.match(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/);
  if (minted) {
    const [h, p] = minted[0].split('.');
    const input = `${h}.${p}`;
    const valid = crypto.createHmac('sha256', SECRET).update(input).digest('base64url') === minted[0].split('.')[2];
    assert.ok(!valid, `the log carries a token signed with the configured secret (a working credential): ${Buffer.from(p, 'base64url')}`);
  }
});

test('a "channels" claim that is not an array does not grant everything (fail closed)', T, async () => {
  for (const bad of ['conversation:*', { 'conversation:*': true }, 1]) {
    const sub = unique('badclaim');
    const r = await upgradeRequest(srv, `/api/ws?token=${token(sub, { channels: bad })}`);
    if (r.status === 401) { assertUnauthorized401(r, `channels ${JSON.stringify(bad)}`); continue; }
    const c = await connect(srv, sub, { channels: bad });
    try {
      c.send({ type: 'subscribe', data: { channel: 'task:secret' } });
      const m = await c.next({ what: 'the subscribe answer' });
      assert.equal(m.type, 'error', `channels ${JSON.stringify(bad)} (not an array) must not allow task:secret: got ${JSON.stringify(m)}`);
      assert.equal(m.data.code, 'unauthorized');
    } finally { await c.shut(); }
  }
});

test('a "channels" claim of non-strings grants nothing but user:<sub>', T, async () => {
  const sub = unique('numclaim');
  const c = await connect(srv, sub, { channels: [42, null, { p: 'conversation:*' }] });
  try {
    c.send({ type: 'subscribe', data: { channel: 'conversation:x' } });
    await c.expectError('unauthorized');
    await c.subscribe(`user:${sub}`);
  } finally { await c.shut(); }
});

test('channel names: exactly 256 bytes (multi-byte UTF-8 included) is accepted, 257 is subscription_failed', T, async () => {
  const c = await connect(srv);
  try {
    const prefix = 'conversation:';
    const ascii256 = prefix + 'a'.repeat(256 - prefix.length);
    const utf256 = prefix + 'é'.repeat((256 - prefix.length - 1) / 2) + 'a'; // 2-byte chars
    assert.equal(Buffer.byteLength(ascii256), 256);
    assert.equal(Buffer.byteLength(utf256), 256);
    await c.subscribe(ascii256);
    await c.subscribe(utf256);
    assert.equal((await publishOk(srv, { channel: utf256, event: 'e', data: { u: 1 } })).delivered, 1);
    assert.deepEqual((await c.expect('e')).data, { u: 1 });
    for (const bad of [ascii256 + 'a', prefix + 'é'.repeat(122), ':id', 'kind:', 'ki nd:x', 'kind:a b', 'kind:a\tb', 'kind/x:y']) {
      c.send({ type: 'subscribe', data: { channel: bad } });
      const m = await c.expectError('subscription_failed');
      assert.equal(m.data.channel, bad);
    }
  } finally { await c.shut(); }
});

test('binary frames and non-object data are invalid_request; the connection stays open', T, async () => {
  const c = await connect(srv);
  try {
    c.ws.send(Buffer.from('{"type":"ping","data":{}}'), { binary: true });
    await c.expectError('invalid_request');
    for (const bad of ['{"type":"ping","data":null}', '{"type":"ping","data":[]}', '{"type":"subscribe","data":{"channel":42}}',
      '{"type":"subscribe"}', '{"type":"unsubscribe","data":{}}', '{"type":"PING","data":{}}', '{"type":"","data":{}}']) {
      c.send(bad);
      await c.expectError('invalid_request');
    }
    assert.deepEqual(await c.fence(), []);
  } finally { await c.shut(); }
});

test('unsubscribe from the own user:<sub>: either refused, or no notification arrives after "unsubscribed"', T, async () => {
  const sub = unique('unsub-self');
  const c = await connect(srv, sub);
  try {
    c.send({ type: 'unsubscribe', data: { channel: `user:${sub}` } });
    const m = await c.next({ what: 'the unsubscribe answer' });
    if (m.type === 'error') return; // refusing to drop the implicit subscription is a consistent answer
    assert.equal(m.type, 'unsubscribed');
    const r = await publishOk(srv, { channel: `user:${sub}`, event: 'notification', data: { message: 'after unsubscribed', level: 'info' } });
    const seen = await c.fence();
    assert.deepEqual(seen, [], `PROTOCOLS §B: no event arrives after "unsubscribed"; publish said delivered ${r.delivered}`);
    assert.equal(r.delivered, 0);
  } finally { await c.shut(); }
});

// ------------------------------------------------------------------ public keys

describe('auth.public_key: RSA', () => {
  let rsa;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wshub-e2e-keys-'));
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' });
  before(async () => {
    fs.writeFileSync(path.join(dir, 'rsa.pem'), pem);
    rsa = await startServer({ config: { auth: { public_key: path.join(dir, 'rsa.pem') } } });
  });
  after(async () => { if (rsa) await rsa.teardown(); fs.rmSync(dir, { recursive: true, force: true }); });

  test('an RS256 token signed with the matching private key is accepted', T, async () => {
    const c = await Svc.open(svcUrl(rsa, rs(claims('rsa-user'), privateKey)));
    try {
      await c.subscribe('conversation:rsa');
      assert.equal((await publishOk(rsa, { channel: 'user:rsa-user', event: 'notification', data: { level: 'info' } })).delivered, 1);
      assert.equal((await c.expect('notification')).data.level, 'info');
    } finally { await c.shut(); }
  });
  test('an RS256 token in Authorization: Bearer is accepted too', T, async () => {
    const c = await Svc.open(svcUrl(rsa), { headers: { Authorization: `Bearer ${rs(claims('rsa-bearer'), privateKey)}` } });
    try { assert.deepEqual(await c.fence(), []); } finally { await c.shut(); }
  });
  test('key confusion: HS256 whose HMAC secret is the PEM text of the public key -> 401 alg_not_allowed', T, async () => {
    await expectRefused(rsa, { query: hs(claims('mallory'), { secret: pem }), reasons: 'alg_not_allowed', what: 'HS256 keyed with the PEM' });
    await expectRefused(rsa, { query: hs(claims('mallory'), { secret: pem.trim() }), reasons: 'alg_not_allowed', what: 'HS256 keyed with the trimmed PEM' });
    await expectRefused(rsa, { query: hs(claims('mallory'), { secret: publicKey.export({ type: 'spki', format: 'der' }) }), reasons: 'alg_not_allowed', what: 'HS256 keyed with the DER' });
  });
  test('HS256 with the configured jwt_secret is refused once a public key is configured (alg_not_allowed)', T, async () => {
    await expectRefused(rsa, { query: token('hs-user'), reasons: 'alg_not_allowed', what: 'HS256 with the env secret' });
  });
  test('an RS256 token signed by another key -> 401 bad_signature', T, async () => {
    await expectRefused(rsa, { query: rs(claims('mallory'), other.privateKey), reasons: 'bad_signature', what: 'RS256 by another key' });
  });
  test('RS384 (not in the default algorithms) -> 401 alg_not_allowed', T, async () => {
    await expectRefused(rsa, { query: rs(claims('rs384'), privateKey, { alg: 'RS384' }), reasons: 'alg_not_allowed', what: 'RS384' });
  });
  test('ES256 against an RSA key -> 401 alg_not_allowed', T, async () => {
    await expectRefused(rsa, { query: es(claims('es-on-rsa'), ec.privateKey), reasons: 'alg_not_allowed', what: 'ES256 on an RSA key' });
  });
  test('an expired RS256 token -> 401 expired', T, async () => {
    await expectRefused(rsa, { query: rs(claims('late', { exp: now() - 60 }), privateKey), reasons: 'expired', what: 'expired RS256' });
  });
});

describe('auth.public_key: EC P-256', () => {
  let ecs;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wshub-e2e-keys-'));
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsaPair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  before(async () => {
    fs.writeFileSync(path.join(dir, 'ec.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    ecs = await startServer({ config: { auth: { public_key: path.join(dir, 'ec.pem') } } });
  });
  after(async () => { if (ecs) await ecs.teardown(); fs.rmSync(dir, { recursive: true, force: true }); });

  test('an ES256 token (JOSE r||s signature) signed with the matching key is accepted', T, async () => {
    const c = await Svc.open(svcUrl(ecs, es(claims('ec-user'), privateKey)));
    try {
      await c.subscribe('task:task-789');
      assert.equal((await publishOk(ecs, { channel: 'task:task-789', event: 'status_update', data: { status: 'completed' } })).delivered, 1);
      assert.equal((await c.expect('status_update')).data.status, 'completed');
    } finally { await c.shut(); }
  });
  test('ES256 signed by another key -> 401 bad_signature', T, async () => {
    await expectRefused(ecs, { query: es(claims('mallory'), other.privateKey), reasons: 'bad_signature', what: 'ES256 by another key' });
  });
  test('ES256 with a DER-encoded signature (not JOSE) -> 401 bad_signature', T, async () => {
    await expectRefused(ecs, { query: es(claims('der'), privateKey, { dsaEncoding: 'der' }), reasons: 'bad_signature', what: 'ES256 DER signature' });
  });
  test('RS256 against an EC key -> 401 alg_not_allowed', T, async () => {
    await expectRefused(ecs, { query: rs(claims('rs-on-ec'), rsaPair.privateKey), reasons: 'alg_not_allowed', what: 'RS256 on an EC key' });
  });
  test('key confusion on an EC key: HS256 keyed with the PEM -> 401 alg_not_allowed', T, async () => {
    await expectRefused(ecs, { query: hs(claims('mallory'), { secret: publicKey.export({ type: 'spki', format: 'pem' }) }), reasons: 'alg_not_allowed', what: 'HS256 keyed with the EC PEM' });
  });
});

// ------------------------------------------------------------------ leeway

test('leeway: a token whose exp is 3 s in the past is accepted (101, default leeway 5 s), not counted as expired', T, async () => {
  const before = await metrics(srv);
  const c = await Svc.open(svcUrl(srv, token('leeway-exp', { exp: now() - 3, iat: now() - 60 })), { label: 'exp-3s' });
  await c.shut();
  const after = await metrics(srv);
  assert.deepEqual(authDiff(before, after), {}, 'no auth failure counted');
});

test('leeway: a connection accepted inside the leeway is usable until exp + leeway, then gets error unauthorized and 1008', T, async () => {
  const exp = now() - 3;
  const c = await Svc.open(svcUrl(srv, token('leeway-live', { exp, iat: now() - 60 })), { label: 'exp-3s-live' });
  const opened = Date.now();
  // Usable: a subscribe and a published event go through before the expiry.
  c.send({ type: 'subscribe', data: { channel: 'conversation:leeway-live' } });
  const first = await c.next({ what: 'the subscribed reply' });
  assert.equal(first.type, 'subscribed', `an accepted connection must be usable before exp + leeway; first message ${(Date.now() - opened)} ms after the open: ${JSON.stringify(first)}`);
  const m = await c.expectError('unauthorized', { timeout: 10000 });
  const at = Date.now();
  const info = await c.waitClose(5000);
  assert.equal(info.code, 1008);
  assert.ok(at >= (exp + 5 - 1) * 1000, `the expiry error came ${at - opened} ms after the open, ${((at / 1000) - exp).toFixed(2)} s after exp: expected no earlier than exp + leeway (5 s) - 1 s (${JSON.stringify(m)})`);
});

test('leeway: a token whose nbf is 3 s in the future is accepted and usable', T, async () => {
  const c = await Svc.open(svcUrl(srv, token('leeway-nbf', { nbf: now() + 3 })), { label: 'nbf+3s' });
  try {
    assert.deepEqual(await c.fence(), []);
    await c.subscribe(`conversation:${unique('nbf')}`);
  } finally { await c.shut(); }
});

describe('a far-future exp (a private server: a sanitizer report here fails only this suite)', () => {
  let far;
  before(async () => { far = await startServer(); });
  after(async () => { if (far) await far.teardown(); });

  test('exp 1e16 s and 2^63-1 s: the connection stays open (no expiry, no overflow)', T, async () => {
    const longs = [];
    try {
      for (const exp of [1e16, '9223372036854775807']) {
        // Hand-made payload: 2^63-1 is not a JS number.
        const payload = `{"sub":"far-${longs.length}","iat":${now()},"exp":${exp}}`;
        const input = `${b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64u(payload)}`;
        const tok = `${input}.${crypto.createHmac('sha256', SECRET).update(input).digest('base64url')}`;
        longs.push(await Svc.open(svcUrl(far, tok), { label: `exp ${exp}` }));
      }
      // The event to wait for: a token expiring in 2 s on a control connection.
      const control = await Svc.open(svcUrl(far, token('control', { exp: now() + 2 })), { label: 'control' });
      await control.expectError('unauthorized', { timeout: 15000 });
      await control.waitClose(5000);
      for (const c of longs) {
        assert.equal(c.closeInfo, null, `${c.label}: closed ${JSON.stringify(c.closeInfo)} with ${JSON.stringify(c.queue)}`);
        assert.deepEqual(await c.fence(), [], `${c.label}: nothing but the pong`);
      }
    } finally { await shutAll(longs); }
  });
});

// ------------------------------------------------------------------ authorization

test('channels claim with globs: * ? [..] match, the rest is unauthorized with data.channel; own user:<sub> stays allowed', T, async () => {
  const sub = unique('globber');
  const c = await connect(srv, sub, { channels: ['conversation:*', 'task:task-7?9', 'project:[ab]*'] });
  try {
    for (const ok of ['conversation:conv-123', 'conversation:a:b', 'task:task-789', 'task:task-7x9', 'project:alpha', 'project:beta', `user:${sub}`]) {
      await c.subscribe(ok);
    }
    for (const no of ['task:task-78', 'task:task-7899', 'project:cat', 'conversations:x', 'team:conversation:x', 'user:someone-else']) {
      c.send({ type: 'subscribe', data: { channel: no } });
      const m = await c.expectError('unauthorized');
      assert.equal(m.data.channel, no, JSON.stringify(m));
    }
    // Denied subscriptions left nothing behind.
    assert.equal((await publishOk(srv, { channel: 'project:cat', event: 'status_update', data: {} })).delivered, 0);
    assert.equal((await publishOk(srv, { channel: 'task:task-7x9', event: 'status_update', data: { n: 1 } })).delivered, 1);
    assert.deepEqual((await c.expect('status_update')).data, { n: 1 });
  } finally { await c.shut(); }
});

test('an empty channels claim allows only the own user:<sub>', T, async () => {
  const sub = unique('empty-claim');
  const c = await connect(srv, sub, { channels: [] });
  try {
    c.send({ type: 'subscribe', data: { channel: 'conversation:x' } });
    await c.expectError('unauthorized');
    await c.subscribe(`user:${sub}`);
  } finally { await c.shut(); }
});

describe('a second server: service.default_policy deny, service.max_subscriptions 3, max_queued_bytes 64 KiB, max_body_bytes 16 KiB, max_header_bytes 64 KiB', () => {
  let pol;
  before(async () => {
    pol = await startServer({ env: { WSHUB_SERVICE_DEFAULT_POLICY: 'deny', WSHUB_SERVICE_MAX_SUBSCRIPTIONS: '3',
      WSHUB_LIMITS_MAX_QUEUED_BYTES: '65536', WSHUB_HTTP_MAX_BODY_BYTES: '16384', WSHUB_HTTP_MAX_HEADER_BYTES: '65536' } });
  });
  after(async () => { if (pol) await pol.teardown(); });

  test('deny policy: without a channels claim only user:<sub> may be subscribed', T, async () => {
    const sub = unique('denied');
    const c = await connect(pol, sub);
    try {
      for (const no of ['conversation:conv-123', 'task:task-789', 'user:someone-else', `user:${sub}x`]) {
        c.send({ type: 'subscribe', data: { channel: no } });
        const m = await c.expectError('unauthorized');
        assert.equal(m.data.channel, no);
      }
      await c.subscribe(`user:${sub}`);
      // The implicit subscription still works and the explicit one did not double it.
      assert.equal((await publishOk(pol, { channel: `user:${sub}`, event: 'notification', data: { message: 'hi', level: 'info' } })).delivered, 1);
      assert.deepEqual((await c.expect('notification')).data, { message: 'hi', level: 'info' });
      assert.deepEqual(await c.fence(), []);
    } finally { await c.shut(); }
  });

  test('deny policy: a chat_message without a channels claim is unauthorized', T, async () => {
    const c = await connect(pol, unique('denied-chat'));
    try {
      c.send({ type: 'chat_message', data: { conversation_id: 'conv-123', content: 'hi' } });
      await c.expectError('unauthorized');
    } finally { await c.shut(); }
  });

  test('deny policy: a channels claim still grants its channels', T, async () => {
    const c = await connect(pol, unique('granted'), { channels: ['conversation:*'] });
    try {
      await c.subscribe('conversation:granted');
      c.send({ type: 'subscribe', data: { channel: 'task:x' } });
      await c.expectError('unauthorized');
    } finally { await c.shut(); }
  });

  test('max_subscriptions 3: the 4th is subscription_failed with data.channel; duplicates and user:<sub> do not count; unsubscribing frees a slot', T, async () => {
    const sub = unique('limited');
    const c = await connect(pol, sub, { channels: ['conversation:*'] });
    const ch = (x) => `conversation:${sub}-${x}`;
    try {
      await c.subscribe(ch('a'));
      await c.subscribe(ch('b'));
      await c.subscribe(ch('c'));
      await c.subscribe(ch('a')); // idempotent, not a 4th
      await c.subscribe(`user:${sub}`); // implicit, not counted
      c.send({ type: 'subscribe', data: { channel: ch('d') } });
      let m = await c.expectError('subscription_failed');
      assert.equal(m.data.channel, ch('d'));
      assert.equal((await publishOk(pol, { channel: ch('d'), event: 'chat_message', data: {} })).delivered, 0);

      c.send({ type: 'unsubscribe', data: { channel: ch('b') } });
      assert.equal((await c.expect('unsubscribed')).data.channel, ch('b'));
      c.send({ type: 'unsubscribe', data: { channel: ch('b') } }); // again: must not free a second slot
      assert.equal((await c.expect('unsubscribed')).data.channel, ch('b'));
      c.send({ type: 'unsubscribe', data: { channel: ch('never') } }); // never subscribed: no slot either
      await c.expect('unsubscribed');
      await c.subscribe(ch('d'));
      assert.equal((await publishOk(pol, { channel: ch('d'), event: 'chat_message', data: { n: 'd' } })).delivered, 1);
      assert.deepEqual((await c.expect('chat_message')).data, { n: 'd' });
      c.send({ type: 'subscribe', data: { channel: ch('e') } });
      m = await c.expectError('subscription_failed');
      assert.equal(m.data.channel, ch('e'));
      c.send({ type: 'subscribe', data: { channel: ch('f') } });
      m = await c.expectError('subscription_failed');
      assert.equal(m.data.channel, ch('f'));
      // The connection is intact.
      assert.deepEqual(await c.fence(), []);
    } finally { await c.shut(); }
  });

  test('the subscription limit is per connection: a second connection of the same user has its own 3', T, async () => {
    const sub = unique('limited2');
    const a = await connect(pol, sub, { channels: ['conversation:*'] });
    const b = await connect(pol, sub, { channels: ['conversation:*'] });
    try {
      for (const x of ['1', '2', '3']) await a.subscribe(`conversation:${sub}-${x}`);
      for (const x of ['4', '5', '6']) await b.subscribe(`conversation:${sub}-${x}`);
    } finally { await shutAll([a, b]); }
  });

  test('a token over 8 KiB (with http.max_header_bytes 64 KiB) is refused with 401 (malformed or missing)', T, async () => {
    const big = token('big', { pad: 'p'.repeat(7000) });
    assert.ok(big.length > 8192);
    // auth.h: AUTH_TOKEN_MAX; auth_request_token "only misses such tokens", so missing is the documented count.
    await expectRefused(pol, { headers: { Authorization: `Bearer ${big}` }, reasons: ['malformed', 'missing'], what: 'a 9 KiB bearer token' });
    await expectRefused(pol, { query: big, reasons: ['malformed', 'missing'], what: 'a 9 KiB query token' });
  });

  test('POST /api/publish: a body of exactly http.max_body_bytes is accepted, one byte more is 413', T, async () => {
    const base = { channel: 'conversation:body-limit', event: 'chat_message', data: { pad: '' } };
    const overhead = Buffer.byteLength(JSON.stringify(base));
    const exact = JSON.stringify({ ...base, data: { pad: 'x'.repeat(16384 - overhead) } });
    assert.equal(Buffer.byteLength(exact), 16384);
    const ok = await publish(pol, exact);
    assert.equal(ok.status, 200, ok.body);
    const over = JSON.stringify({ ...base, data: { pad: 'x'.repeat(16385 - overhead) } });
    const r = await request(pol, { method: 'POST', path: '/api/publish', body: over, agent: false, headers: { Authorization: `Bearer ${API_KEY}` } });
    assert.equal(r.status, 413, r.body);
    const big = await request(pol, { method: 'POST', path: '/api/publish', body: 'x'.repeat(64 * 1024), agent: false, headers: { Authorization: `Bearer ${API_KEY}` } }).catch((e) => ({ status: `error ${e.code}` }));
    assert.equal(big.status, 413, 'a much larger body is refused with 413 too (answered before the body is read)');
  });

  test('slow consumer on fan-out: a subscriber that never reads is closed (1013), counted, and a normal one gets every event in order', { timeout: 90000 }, async (t) => {
    const channel = `conversation:${unique('slow')}`;
    const EVENT_PAD = 8 * 1024, MIN_BYTES = 1 << 20, MAX_BYTES = 16 << 20;
    const normal = await connect(pol, unique('fast'), { channels: ['conversation:*'] });
    const slow = new RawWs(pol.port);
    const before = await metrics(pol);
    let received = 0;
    const order = [];
    try {
      await slow.handshake(`/api/ws?token=${token(unique('slow'), { channels: ['conversation:*'] })}`);
      slow.sendText(JSON.stringify({ type: 'subscribe', data: { channel } }));
      await slow.waitFor(() => slow.texts.some((x) => x.includes('"subscribed"')), 5000, 'the slow subscriber\'s subscribed');
      slow.sock.pause(); // from here on it never reads
      await normal.subscribe(channel);
      let wakeNormal = () => {};
      normal.ws.on('message', (d) => {
        const m = JSON.parse(d);
        if (m.type === 'chat_message') { order.push(m.data.seq); received++; wakeNormal(); }
      });
      normal.ws.on('close', () => wakeNormal());
      // The normal subscriber is kept in lockstep (each publish waits for its delivery), so its
      // queue never holds more than one event: only the reader that never reads can pass 64 KiB.
      const normalHas = (n) => within(new Promise((resolve, reject) => {
        wakeNormal = () => {
          if (received >= n) resolve();
          else if (normal.closeInfo) reject(new Error(`the normal subscriber was closed ${JSON.stringify(normal.closeInfo)} after ${received} events`));
        };
        wakeNormal();
      }), 10000, `the normal subscriber to receive event ${n - 1} (got ${received})`);

      let seq = 0, bytes = 0, slowCounted = false;
      const pad = 'y'.repeat(EVENT_PAD);
      while (bytes < MAX_BYTES && !(slowCounted && bytes >= MIN_BYTES)) {
        const r = await publishOk(pol, { channel, event: 'chat_message', data: { seq, pad } });
        assert.ok(r.delivered === 2 || r.delivered === 1, `delivered ${r.delivered}`);
        seq++;
        await normalHas(seq);
        bytes += EVENT_PAD;
        if (seq % 16 === 0) {
          const m = await metrics(pol);
          slowCounted = m.wshub_slow_consumer_closes_total > before.wshub_slow_consumer_closes_total;
        }
      }
      const total = seq;
      t.diagnostic(`published ${total} events (${(bytes / 1048576).toFixed(1)} MiB); slow consumer counted: ${slowCounted}`);
      await normalHas(total);
      assert.equal(normal.closeInfo, null, 'the normal subscriber is still open');
      assert.deepEqual(order, Array.from({ length: total }, (_, i) => i), 'the normal subscriber gets every event, once, in order');
      const after = await waitFor(async () => {
        const m = await metrics(pol);
        return m.wshub_slow_consumer_closes_total > before.wshub_slow_consumer_closes_total ? m : null;
      }, 5000, 'wshub_slow_consumer_closes_total to move');
      assert.equal(after.wshub_slow_consumer_closes_total - before.wshub_slow_consumer_closes_total, 1, 'exactly one slow consumer');

      // Now read what reached the slow one: a 1013 "slow consumer" close frame, or the socket closed.
      slow.sock.resume();
      await slow.waitFor(() => slow.closeFrame || slow.ended || slow.closed, 15000, 'the slow consumer to be closed');
      if (slow.closeFrame) {
        assert.deepEqual(slow.closeFrame, { code: 1013, reason: 'slow consumer' });
        if (!slow.closed) slow.sock.write(clientFrame(8, Buffer.from([0x03, 0xf3])));
        await slow.waitFor(() => slow.ended || slow.closed, 10000, 'the server to end the TCP connection after the close');
      }
      t.diagnostic(`slow consumer: ${slow.textCount} events reached it, close frame ${JSON.stringify(slow.closeFrame)}`);
      assert.ok(slow.textCount < total, `the slow consumer got fewer events than published (${slow.textCount} of ${total}): queued ones were dropped`);
      // Its subscription is gone: the next publish reaches only the normal subscriber.
      await waitFor(async () => (await publishOk(pol, { channel, event: 'chat_message', data: { seq: -1 } })).delivered === 1, 10000,
        'the slow consumer\'s subscription to be removed');
      // The normal connection is intact (its queue holds the events counted above).
      normal.queue.length = 0;
      const late = await normal.fence();
      assert.ok(late.every((m) => m.type === 'chat_message' && m.data.seq === -1), `only the probe publishes: ${JSON.stringify(late).slice(0, 300)}`);
    } finally {
      slow.sock.destroy();
      await normal.shut();
    }
  });
});

// ------------------------------------------------------------------ chat_message

test('chat_message validation: missing/empty/non-string fields -> invalid_request; connection stays open; nothing published', T, async () => {
  const conv = unique('chatval');
  const c = await connect(srv, unique('chatter'));
  const watcher = await connect(srv, unique('watcher'));
  try {
    await c.subscribe(`conversation:${conv}`);
    await watcher.subscribe(`conversation:${conv}`);
    for (const data of [{}, { content: 'no conversation' }, { conversation_id: conv }, { conversation_id: '', content: 'x' },
      { conversation_id: 42, content: 'x' }, { conversation_id: conv, content: 7 }, { conversation_id: conv, content: null },
      { conversation_id: 'has space', content: 'x' }]) {
      c.send({ type: 'chat_message', data });
      await c.expectError('invalid_request');
    }
    c.send({ type: 'chat_message' });
    await c.expectError('invalid_request');
    c.send({ type: 'chat_message', data: 'hello' });
    await c.expectError('invalid_request');
    assert.deepEqual(await watcher.fence(), [], 'no invalid chat_message was broadcast');
    assert.deepEqual(await c.fence(), []);
  } finally { await shutAll([c, watcher]); }
});

test('chat_message to a conversation the channels claim does not allow -> unauthorized, not broadcast', T, async () => {
  const conv = unique('private');
  const watcher = await connect(srv, unique('watcher'));
  const c = await connect(srv, unique('scoped-chatter'), { channels: ['conversation:allowed-*'] });
  try {
    await watcher.subscribe(`conversation:${conv}`);
    c.send({ type: 'chat_message', data: { conversation_id: conv, content: 'sneaky' } });
    await c.expectError('unauthorized');
    assert.deepEqual(await watcher.fence(), [], 'the refused chat_message must not reach the conversation');
    // An allowed one goes through, sender_id = sub, delivered to the watcher.
    const ok = `allowed-${unique('c')}`;
    await watcher.subscribe(`conversation:${ok}`);
    c.send({ type: 'chat_message', data: { conversation_id: ok, content: 'fine', extra: 'dropped' } });
    const m = await watcher.expect('chat_message');
    assert.deepEqual(m.data, { conversation_id: ok, sender_id: c.label.replace('service ', ''), content: 'fine' });
  } finally { await shutAll([c, watcher]); }
});

test('chat_message: a client cannot spoof sender_id', T, async () => {
  const conv = unique('spoof');
  const c = await connect(srv, 'honest-sub');
  try {
    await c.subscribe(`conversation:${conv}`);
    c.send({ type: 'chat_message', data: { conversation_id: conv, content: 'x', sender_id: 'ceo' } });
    assert.equal((await c.expect('chat_message')).data.sender_id, 'honest-sub');
  } finally { await c.shut(); }
});

// ------------------------------------------------------------------ POST /api/publish

test('POST /api/publish with "channels": [a, b] delivers to both and sums delivered', T, async () => {
  const a = `conversation:${unique('pa')}`, b = `task:${unique('pb')}`;
  const x = await connect(srv), y = await connect(srv), z = await connect(srv);
  try {
    await x.subscribe(a); await y.subscribe(a); await z.subscribe(b);
    await x.subscribe(b); // x is on both: it gets the event once per channel
    const r = await publishOk(srv, { channels: [a, b], event: 'status_update', data: { entity_type: 'task', entity_id: 't', status: 'done' } });
    assert.equal(r.delivered, 4);
    for (const c of [x, x, y, z]) assert.deepEqual((await c.expect('status_update')).data, { entity_type: 'task', entity_id: 't', status: 'done' });
    for (const c of [x, y, z]) assert.deepEqual(await c.fence(), []);
    // A channel nobody is on adds 0.
    assert.equal((await publishOk(srv, { channels: [a, `conversation:${unique('none')}`], event: 'e', data: {} })).delivered, 2);
  } finally { await shutAll([x, y, z]); }
});

test('POST /api/publish without data: subscribers get data {}', T, async () => {
  const ch = `conversation:${unique('nodata')}`;
  const c = await connect(srv);
  try {
    await c.subscribe(ch);
    assert.equal((await publishOk(srv, { channel: ch, event: 'notification' })).delivered, 1);
    const m = await c.expect('notification');
    assert.deepEqual(m.data, {});
  } finally { await c.shut(); }
});

test('POST /api/publish: event and data are passed through exactly (unicode, nesting, JSON escapes)', T, async () => {
  const ch = `conversation:${unique('exact')}`;
  const c = await connect(srv);
  try {
    await c.subscribe(ch);
    const data = { text: 'héllo "wörld" \\ \n\t </script> \u2028 😀', n: 1.5, neg: -3, nested: { a: [1, { b: null }], t: true }, empty: {} };
    await publishOk(srv, { channel: ch, event: 'weird "event" é', data });
    const m = await c.expect('weird "event" é');
    assert.deepEqual(m.data, data);
  } finally { await c.shut(); }
});

test('POST /api/publish: event missing or not a string -> 400 naming event; data not an object -> 400 naming data', T, async () => {
  const ch = `conversation:${unique('bad')}`;
  for (const body of [{ channel: ch, data: {} }, { channel: ch, event: 42, data: {} }, { channel: ch, event: null }, { channel: ch, event: '' }]) {
    const r = await publish(srv, body);
    assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${r.body}`);
    assert.match(r.body, /event/, `the message should name event: ${r.body}`);
    assert.equal(r.json && r.json.ok, false, r.body);
  }
  for (const data of [[1, 2], 'text', 42, true, null]) {
    const r = await publish(srv, { channel: ch, event: 'e', data });
    assert.equal(r.status, 400, `data ${JSON.stringify(data)} -> ${r.status} ${r.body}`);
    assert.match(r.body, /data/, `the message should name data: ${r.body}`);
  }
  for (const body of [{ channels: [], event: 'e' }, { channels: 'conversation:x', event: 'e' }, { channels: ['conversation:x', 7], event: 'e' },
    { channel: ch, channels: [ch], event: 'e' }]) {
    const r = await publish(srv, body);
    assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${r.body}`);
    assert.match(r.body, /channel/, r.body);
  }
  for (const raw of ['[]', '"x"', '', 'null']) {
    const r = await publish(srv, raw);
    assert.equal(r.status, 400, `${JSON.stringify(raw)} -> ${r.status} ${r.body}`);
  }
});

test('POST /api/publish: a wrong method is 405 with Allow: POST (GET, PUT, DELETE), even with the key', T, async () => {
  for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
    const r = await publish(srv, method === 'GET' || method === 'DELETE' ? undefined : { channel: 'conversation:x', event: 'e' }, { method });
    assert.equal(r.status, 405, `${method} -> ${r.status} ${r.body}`);
    assert.match(String(r.headers.allow), /POST/, `${method}: Allow ${r.headers.allow}`);
  }
});

test('POST /api/publish: a body over http.max_body_bytes (default 1 MiB) is 413', T, async () => {
  const body = JSON.stringify({ channel: 'conversation:big', event: 'e', data: { pad: 'z'.repeat((1 << 20) + 10) } });
  const r = await request(srv, { method: 'POST', path: '/api/publish', body, agent: false, headers: { Authorization: `Bearer ${API_KEY}` } })
    .catch((e) => ({ status: `error ${e.code || e.message}` }));
  assert.equal(r.status, 413, r.body);
  // The server is fine, and a body of exactly 1 MiB is still accepted.
  const okBody = { channel: 'conversation:big', event: 'e', data: { pad: '' } };
  okBody.data.pad = 'z'.repeat((1 << 20) - Buffer.byteLength(JSON.stringify(okBody)));
  assert.equal((await publish(srv, okBody)).status, 200);
});

// ------------------------------------------------------------------ SIGHUP

describe('SIGHUP reloads the keys from the config file', () => {
  let rl;
  const logCount = (re) => (rl.log().match(re) || []).length;
  before(async () => {
    rl = await startServer({ env: { WSHUB_JWT_SECRET: undefined, WSHUB_API_KEY: undefined }, config: { auth: { jwt_secret: 'one' }, api: { key: 'api-one' } } });
  });
  after(async () => { if (rl) await rl.teardown(); });

  async function hup(expect = /reloaded/g) {
    const before = logCount(expect);
    process.kill(rl.pid, 'SIGHUP');
    await waitFor(() => logCount(expect) > before, 5000, `the log to say ${expect}`);
  }

  test('a "one" connection survives the reload to "two"; new "two" tokens are accepted, "one" tokens refused; api.key too', T, async () => {
    const ch = `conversation:${unique('reload')}`;
    const old = await Svc.open(svcUrl(rl, hs(claims('old-user'), { secret: 'one' })), { label: 'one' });
    const fresh = [];
    try {
      await old.subscribe(ch);
      await expectRefused(rl, { query: hs(claims('early'), { secret: 'two' }), reasons: 'bad_signature', what: '"two" before the reload' });
      assert.equal((await publish(rl, { channel: ch, event: 'e' }, { key: 'api-one' })).status, 200);
      await old.expect('e');

      fs.writeFileSync(path.join(rl.dir, 'wshub.json'), JSON.stringify({ auth: { jwt_secret: 'two' }, api: { key: 'api-two' } }));
      await hup();

      assert.deepEqual(await old.fence(), [], 'the "one" connection is still open and served');
      const two = await Svc.open(svcUrl(rl, hs(claims('new-user'), { secret: 'two' })), { label: 'two' });
      fresh.push(two);
      await two.subscribe(ch);
      await expectRefused(rl, { query: hs(claims('stale'), { secret: 'one' }), reasons: 'bad_signature', what: '"one" after the reload' });

      assert.equal((await publish(rl, { channel: ch, event: 'e' }, { key: 'api-one' })).status, 401, 'the old API key is refused');
      const r = await publishOk(rl, { channel: ch, event: 'after', data: { n: 2 } }).catch(() => null);
      assert.equal(r, null, 'the env key of the other servers is not this server\'s');
      const ok = await publish(rl, { channel: ch, event: 'after', data: { n: 2 } }, { key: 'api-two' });
      assert.equal(ok.status, 200, ok.body);
      assert.equal(ok.json.delivered, 2);
      assert.deepEqual((await old.expect('after')).data, { n: 2 });
      assert.deepEqual((await two.expect('after')).data, { n: 2 });
    } finally { await shutAll([old, ...fresh]); }
  });

  test('a rejected reload (invalid file) keeps the running keys', T, async () => {
    fs.writeFileSync(path.join(rl.dir, 'wshub.json'), '{"auth": {"jwt_secret": "three"}, "no_such_key": 1}');
    await hup(/configuration rejected/g);
    const c = await Svc.open(svcUrl(rl, hs(claims('still-two'), { secret: 'two' })), { label: 'still two' });
    try { assert.deepEqual(await c.fence(), []); } finally { await c.shut(); }
    await expectRefused(rl, { query: hs(claims('three'), { secret: 'three' }), reasons: 'bad_signature', what: '"three" from a rejected file' });
  });
});

// ------------------------------------------------------------------ ordering guarantees under load

test('publish order holds whichever worker handles each publish (a new TCP connection per publish)', T, async () => {
  const ch = `conversation:${unique('xworker')}`;
  const N = 300;
  const subs = [];
  try {
    for (let i = 0; i < 10; i++) { const c = await connect(srv); await c.subscribe(ch); subs.push(c); }
    for (let seq = 0; seq < N; seq++) {
      const r = await request(srv, { method: 'POST', path: '/api/publish', body: { channel: ch, event: 'tick', data: { seq } }, agent: false,
        headers: { Authorization: `Bearer ${API_KEY}` } });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.delivered, 10);
    }
    for (const c of subs) {
      const got = [];
      for (let i = 0; i < N; i++) got.push((await c.expect('tick')).data.seq);
      assert.deepEqual(got, Array.from({ length: N }, (_, i) => i), `${c.label}: in publish order`);
      assert.deepEqual(await c.fence(), []);
    }
  } finally { await shutAll(subs); }
});

test('subscribe/unsubscribe cycles under continuous publishing: no event before "subscribed" or after "unsubscribed", seq increasing', { timeout: 60000 }, async (t) => {
  const ch = `conversation:${unique('churn')}`;
  const CLIENTS = 20, CYCLES = 15;
  const pub = new RawHttp(srv.port);
  let stop = false, published = 0;
  const violations = [];
  const pumping = (async () => {
    await pub.connected;
    while (!stop) {
      const batch = [];
      for (let i = 0; i < 8; i++) batch.push(pub.post('/api/publish', { channel: ch, event: 'tick', data: { seq: published++ } }, API_KEY));
      for (const r of await Promise.all(batch)) if (r.status !== 200) throw new Error(`publish: ${r.status} ${r.body}`);
    }
  })();
  pumping.catch(() => {});
  const cycle = async (c) => {
    let state = 'out', last = -1, inThisPeriod = 0;
    let wake = () => {};
    c.ws.removeAllListeners('message');
    c.ws.on('message', (d) => {
      const m = JSON.parse(d);
      if (m.type === 'tick') {
        if (state === 'out' || state === 'pending-sub') violations.push(`${c.label}: tick ${m.data.seq} while ${state}`);
        if (m.data.seq <= last) violations.push(`${c.label}: tick ${m.data.seq} after ${last}`);
        last = m.data.seq;
        inThisPeriod++;
      } else if (m.type === 'subscribed') state = 'in';
      else if (m.type === 'unsubscribed') state = 'out';
      else if (m.type !== 'pong') violations.push(`${c.label}: unexpected ${d}`);
      wake();
    });
    const until = (pred) => within(new Promise((resolve) => { wake = () => { if (pred()) resolve(); }; wake(); }), 10000, `${c.label} in state ${state}`);
    for (let k = 0; k < CYCLES; k++) {
      state = 'pending-sub';
      c.send({ type: 'subscribe', data: { channel: ch } });
      await until(() => state === 'in');
      inThisPeriod = 0;
      await until(() => inThisPeriod >= 2);
      state = 'pending-unsub';
      c.send({ type: 'unsubscribe', data: { channel: ch } });
      await until(() => state === 'out');
    }
  };
  const clients = [];
  try {
    for (let i = 0; i < CLIENTS; i++) clients.push(await connect(srv));
    await Promise.all(clients.map(cycle));
    stop = true;
    await within(pumping, 10000, 'the publisher to stop');
    // Let the last publishes drain, then nothing may have reached an unsubscribed client.
    await Promise.all(clients.map((c) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no pong')), 10000);
      c.ws.on('message', (d) => { if (JSON.parse(d).type === 'pong') { clearTimeout(timer); resolve(); } });
      c.send({ type: 'ping' });
    })));
    t.diagnostic(`${published} events published during ${CLIENTS} x ${CYCLES} subscribe/unsubscribe cycles`);
    assert.deepEqual(violations, []);
  } finally {
    stop = true;
    pub.close();
    await shutAll(clients);
  }
});

// ------------------------------------------------------------------ metrics

test('metrics: wshub_fanout_delivery_seconds counts each delivery once, in cumulative buckets; wshub_state_pool_bytes follows the connections', T, async () => {
  const ch = `conversation:${unique('fanout')}`;
  const subs = [];
  const fan = (m) => Object.keys(m).filter((k) => k.startsWith('wshub_fanout_delivery_seconds_bucket{'))
    .map((k) => ({ le: /le="([^"]+)"/.exec(k)[1], n: m[k] }));
  const pool = (m) => m['wshub_state_pool_bytes{kind="objects"}'];
  // A server of its own: nothing else opens or closes connections while the pool is watched.
  const own = await startServer();
  try {
    await sleep(120); // two 50 ms ticks: the gauge has seen the idle server
    const m0 = await metrics(own);
    for (let i = 0; i < 8; i++) subs.push(await connect(own));
    for (const c of subs) await c.subscribe(ch);
    for (let k = 0; k < 3; k++) {
      assert.equal((await publishOk(own, { channel: ch, event: 'tick', data: { k } })).delivered, 8);
      for (const c of subs) await c.expect('tick');
    }
    // The pool gauge is copied by each worker's 50 ms tick, so it may lag the connections by
    // that much; the histogram is counted at the turn's flush. Eight sessions with a
    // subscription each hold at least a connection, a session and a subscription apiece.
    const minGrowth = 8 * (300 + 64);
    const m1 = await waitFor(async () => {
      const m = await metrics(own);
      return m.wshub_fanout_delivery_seconds_count - m0.wshub_fanout_delivery_seconds_count >= 24 &&
        pool(m) - pool(m0) >= minGrowth ? m : null;
    }, 3000, `fan-out histogram +24 and pool objects up by ${minGrowth}`);
    assert.equal(m1.wshub_fanout_delivery_seconds_count - m0.wshub_fanout_delivery_seconds_count, 24);
    assert.equal(m1.wshub_deliveries_total - m0.wshub_deliveries_total, 24);
    const b0 = fan(m0), b1 = fan(m1);
    assert.equal(b1.length, b0.length);
    assert.equal(b1[b1.length - 1].le, '+Inf');
    assert.equal(b1[b1.length - 1].n, m1.wshub_fanout_delivery_seconds_count);
    for (let i = 1; i < b1.length; i++) assert.ok(b1[i].n >= b1[i - 1].n, `bucket ${b1[i].le} is cumulative`);
    // On an idle test machine the 24 deliveries are written well within 100 ms.
    const at100ms = b1.find((b) => b.le === '0.1').n - b0.find((b) => b.le === '0.1').n;
    assert.equal(at100ms, 24);
    assert.ok(m1.wshub_fanout_delivery_seconds_sum >= m0.wshub_fanout_delivery_seconds_sum);
    // Pages hold the objects (none in a sanitizer build: there every object is calloc'd).
    const pages = m1['wshub_state_pool_bytes{kind="pages"}'];
    assert.ok(pages === 0 || pages >= pool(m1), `pages ${pages} < objects ${pool(m1)}`);
    await shutAll(subs.splice(0));
    let last;
    await waitFor(async () => {
      last = await metrics(own);
      // within one HTTP connection (≤ 384 bytes) of the start: the /metrics request's own
      return pool(last) <= pool(m0) + 384 ? last : null;
    }, 3000, 'pool objects back to where they were once the connections closed').catch((e) => {
      throw new Error(`${e.message}: ${pool(m0)} before, ${pool(m1)} open, ${pool(last)} now`);
    });
  } finally { await shutAll(subs); await own.teardown(); }
});

test('metrics: a publish to N subscribers moves wshub_publishes_total by 1 and wshub_deliveries_total by N', T, async () => {
  const ch = `conversation:${unique('metrics')}`;
  const subs = [];
  try {
    for (let i = 0; i < 6; i++) subs.push(await connect(srv));
    for (const c of subs) await c.subscribe(ch);
    const settled = async (pubs, dels, m0) => waitFor(async () => {
      const m = await metrics(srv);
      return m.wshub_deliveries_total - m0.wshub_deliveries_total >= dels && m.wshub_publishes_total - m0.wshub_publishes_total >= pubs ? m : null;
    }, 3000, `publishes +${pubs}, deliveries +${dels}`);

    let m0 = await metrics(srv);
    assert.equal((await publishOk(srv, { channel: ch, event: 'tick', data: { n: 1 } })).delivered, 6);
    for (const c of subs) await c.expect('tick');
    let m1 = await settled(1, 6, m0);
    assert.equal(m1.wshub_publishes_total - m0.wshub_publishes_total, 1);
    assert.equal(m1.wshub_deliveries_total - m0.wshub_deliveries_total, 6);

    // A publish nobody receives: a publish, no delivery.
    m0 = await metrics(srv);
    assert.equal((await publishOk(srv, { channel: `conversation:${unique('empty')}`, event: 'tick' })).delivered, 0);
    m1 = await settled(1, 0, m0);
    assert.equal(m1.wshub_publishes_total - m0.wshub_publishes_total, 1);
    assert.equal(m1.wshub_deliveries_total - m0.wshub_deliveries_total, 0);

    // A chat_message command is a publish too (sender included).
    m0 = await metrics(srv);
    subs[0].send({ type: 'chat_message', data: { conversation_id: ch.slice('conversation:'.length), content: 'c' } });
    for (const c of subs) await c.expect('chat_message');
    m1 = await settled(1, 6, m0);
    assert.equal(m1.wshub_publishes_total - m0.wshub_publishes_total, 1);
    assert.equal(m1.wshub_deliveries_total - m0.wshub_deliveries_total, 6);

    // An unsubscribed connection is no longer counted.
    subs[5].send({ type: 'unsubscribe', data: { channel: ch } });
    await subs[5].expect('unsubscribed');
    m0 = await metrics(srv);
    assert.equal((await publishOk(srv, { channel: ch, event: 'tick', data: { n: 2 } })).delivered, 5);
    for (const c of subs.slice(0, 5)) await c.expect('tick');
    m1 = await settled(1, 5, m0);
    assert.equal(m1.wshub_deliveries_total - m0.wshub_deliveries_total, 5);
    assert.deepEqual(await subs[5].fence(), []);
  } finally { await shutAll(subs); }
});

test('wshub_connections_open{endpoint="service"} counts open service connections and returns to 0 once all are closed', T, async () => {
  const key = 'wshub_connections_open{endpoint="service"}';
  // Every earlier test closed its connections (the 1,000 were terminated): the gauge settles at 0.
  await waitFor(async () => (await metrics(srv))[key] === 0, 10000, `${key} to settle at 0`);
  const cs = [];
  try {
    for (let i = 0; i < 3; i++) cs.push(await connect(srv));
    await waitFor(async () => (await metrics(srv))[key] === 3, 3000, `${key} = 3`);
  } finally { await shutAll(cs); }
  await waitFor(async () => (await metrics(srv))[key] === 0, 5000, `${key} back to 0`);
});
