'use strict';
// API D — Flow.ai's socket API: GET /socket.info, then /ws/<token> (PROTOCOLS.md §0, §D and "The
// server API"). Beyond the shared acceptance file (shared/acceptance/tests/40-flow.test.js), this
// drives:
//  - the seed document's own vanilla-JS browser example, completed in web/examples/flow.html and
//    served by wshub at /examples/flow.html, in headless Chromium (playwright-core, Debian's
//    /usr/bin/chromium): XMLHttpRequest to socket.info, new WebSocket(endpoint), the seed's test
//    message, the 30 s keep-alive ping (on Playwright's fake clock);
//  - two SDK-like sockets on one thread on the two workers, and GET /thread.history of both sides;
//  - the bot: rules from a flow.bot_file written here (text match with quick replies, event
//    name), the default echo bot, flow.reply_delay_ms with agent.typing first;
//  - endpoint tickets: expiry (flow.token_ttl_ms), single use across workers and under a race,
//    x-flowai-threadid joining the thread from the start;
//  - the idle timeout (flow.idle_timeout_ms) against silence, WebSocket ping frames and JSON pings;
//  - CORS and the Origin allow-list (flow.allowed_origins), GET /thread.unnoticed;
//  - publishes to thread:<id> (a `messages` array, or `text`) and the history they leave;
//  - SIGTERM: close 1001 without a goodbye, exit 0;
//  - every frame of every test is one of the server types the SDK knows.
//
// Environment:
//   WSHUB_BIN         the binary under test (build-asan/wshubd for the sanitizer run)
//   CHROMIUM_PATH     the Chromium to drive (default /usr/bin/chromium)
const { test, describe, before, after } = require('node:test');
const { sleep, within, waitLog, httpRequest } = require('./lib/util');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');

const { start, ROOT, SANITIZER } = require('./lib/server');

// ------------------------------------------------------------------ configuration

const API_KEY = `flow-e2e-${crypto.randomBytes(8).toString('hex')}`;
// A Flow client id is base64 of "<id>|<channel id>"; this one carries '+', '/' and '=' so that a
// client that does not URL-encode it in the socket.info query gets it wrong.
const CLIENT_ID = Buffer.concat([Buffer.from('wshub-e2e'), Buffer.from([0xfb, 0xff, 0xbf]), Buffer.from('|web-chat!')]).toString('base64');
assert.match(CLIENT_ID, /\+.*\/.*=$/);
const ORIGIN = 'https://shop.example.com';
const OTHER_ORIGIN = 'https://evil.example.net';
const ALLOWED_TYPES = ['pong', 'message.delivered', 'message.received', 'activities.delivered', 'activities.created',
  'agent.typing', 'error', 'secret.generated', 'interruption.occurred'];
const BOT = { userId: 'flowai|system', name: 'system', role: 'bot' };
const PAGE_FILE = path.join(ROOT, 'web', 'examples', 'flow.html');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const T = { timeout: 30000 };
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'wshub-flow-e2e-')); // screenshots and bot files

// Every frame any socket of any test received (the browser's too): checked at the end.
const ALL_FRAMES = [];

// ------------------------------------------------------------------ small helpers

let seq = 0;
const unique = (p) => `${p}-${process.pid}-${Date.now().toString(36)}-${seq++}`;

function short(v) {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s && s.length > 600 ? `${s.slice(0, 600)}…` : s;
}


function request(inst, { method = 'GET', path: p, headers = {}, body, timeout = 10000 }) {
  return httpRequest(inst, { method, path: p, headers, body, timeout });
}

async function publishOk(inst, body) {
  const r = await request(inst, { method: 'POST', path: '/api/publish', body, headers: { Authorization: `Bearer ${API_KEY}` } });
  assert.equal(r.status, 200, `publish ${short(body)}: ${r.status} ${r.text}`);
  assert.equal(r.json.ok, true);
  return r.json;
}

// GET /socket.info the SDK's way (x-flowai-* headers; unset values as the text "null") or the
// seed's way (query parameters).
async function socketInfo(inst, { clientId = CLIENT_ID, sessionId = unique('session'), threadId, origin, viaQuery = false } = {}) {
  const headers = origin ? { Origin: origin } : {};
  let p = '/socket.info';
  if (viaQuery) {
    p += `?clientId=${encodeURIComponent(clientId)}&sessionId=${encodeURIComponent(sessionId)}`;
  } else {
    Object.assign(headers, { 'Content-Type': 'application/json', 'x-flowai-clientid': clientId, 'x-flowai-sessionid': sessionId,
      'x-flowai-threadid': threadId === undefined ? 'null' : threadId, 'x-flowai-secret': 'null', 'x-flowai-ott': 'null' });
  }
  return request(inst, { path: p, headers });
}

async function endpointOf(inst, opts) {
  const r = await socketInfo(inst, opts);
  assert.equal(r.status, 200, `socket.info: ${r.status} ${r.text}`);
  assert.equal(r.json.status, 'ok');
  return r.json.payload.endpoint;
}

// History entries of a thread (the SDK's headers, or the older SDK's query parameters).
async function history(inst, threadId, { unnoticed = false, viaQuery = false, origin } = {}) {
  const base = unnoticed ? '/thread.unnoticed' : '/thread.history';
  const headers = origin ? { Origin: origin } : {};
  let p = base;
  if (viaQuery) p += `?clientId=${encodeURIComponent(CLIENT_ID)}&threadId=${encodeURIComponent(threadId)}`;
  else Object.assign(headers, { 'x-flowai-clientid': CLIENT_ID, 'x-flowai-threadid': threadId, 'x-flowai-secret': 'null' });
  const r = await request(inst, { path: p, headers });
  assert.equal(r.status, 200, `${base} ${threadId}: ${r.status} ${r.text}`);
  assert.equal(r.json.status, 'ok');
  assert.equal(r.json.payload.threadId, threadId);
  const list = r.json.payload[unnoticed ? 'unnoticed' : 'history'];
  assert.ok(Array.isArray(list), `${base} payload: ${short(r.json.payload)}`);
  return list;
}

// Waits until `re` matches the server's log (fs.watch on the log file; bounded). The log is the

// ------------------------------------------------------------------ a Flow socket on `ws`

// Frames in arrival order with bounded, event-driven waits; a cursor for "the next frame".
class FlowSocket {
  constructor(url, { label = 'flow', origin, threadId = null } = {}) {
    this.label = label;
    this.url = url;
    this.threadId = threadId;
    this.frames = []; // { msg, at }
    this.cursor = 0;
    this.waiters = new Set();
    this.closeInfo = null;
    this.wsPongs = 0;
    this.ws = new WebSocket(url, { origin });
    this.ws.on('message', (data, isBinary) => {
      const text = data.toString('utf8');
      ALL_FRAMES.push({ label, text, isBinary });
      let msg;
      try { msg = JSON.parse(text); } catch { msg = { notJson: text }; }
      this.frames.push({ msg, at: Date.now() });
      this.wake();
    });
    this.ws.on('pong', () => { this.wsPongs++; });
    this.ws.on('error', () => {});
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => { this.openedAt = Date.now(); resolve(this); });
      this.ws.once('unexpected-response', (req, res) => {
        reject(Object.assign(new Error(`${label}: upgrade refused with ${res.statusCode}`), { status: res.statusCode }));
        req.destroy();
      });
      this.ws.once('error', reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8'), at: Date.now() };
        this.wake();
        resolve(this.closeInfo);
      });
    });
  }

  get localPort() { return this.ws._socket && this.ws._socket.localPort; }
  get types() { return this.frames.map((f) => f.msg.type); }

  wake() { for (const w of [...this.waiters]) w.check(); }

  // The first frame at index >= from that matches pred: { msg, index, at }.
  waitFor(pred, what, { timeout = 5000, from = 0 } = {}) {
    return new Promise((resolve, reject) => {
      const w = {};
      const timer = setTimeout(() => settle(new Error(`${this.label}: timed out after ${timeout} ms waiting for ${what}; frames: ${short(this.frames.map((f) => f.msg))}`)), timeout);
      const settle = (err, v) => {
        clearTimeout(timer);
        this.waiters.delete(w);
        if (err) reject(err); else resolve(v);
      };
      w.check = () => {
        for (let i = from; i < this.frames.length; i++) {
          if (pred(this.frames[i].msg)) return settle(null, { msg: this.frames[i].msg, index: i, at: this.frames[i].at });
        }
        if (this.closeInfo) settle(new Error(`${this.label}: closed ${short(this.closeInfo)} while waiting for ${what}; frames: ${short(this.frames.map((f) => f.msg))}`));
      };
      this.waiters.add(w);
      w.check();
    });
  }

  // The next unread frame (optionally of a type); moves the cursor past it.
  async next(type, opts = {}) {
    const r = await this.waitFor((m) => !type || m.type === type, type || 'the next frame', { ...opts, from: this.cursor });
    if (type && r.index !== this.cursor) {
      throw new Error(`${this.label}: expected ${type} next, got ${short(this.frames.slice(this.cursor, r.index + 1).map((f) => f.msg))}`);
    }
    this.cursor = r.index + 1;
    return r.msg;
  }

  send(v) { this.ws.send(typeof v === 'string' ? v : JSON.stringify(v)); }

  sendMessage(speech, extra = {}) {
    const payload = { threadId: this.threadId, speech, originator: { name: 'Jane Doe', role: 'external' }, ...extra };
    this.send({ type: 'message.send', payload });
    return payload;
  }

  // {"type":"ping"} -> {"type":"pong"}: also a barrier for everything sent before it.
  async pingPong() {
    this.send({ type: 'ping' });
    return this.next('pong');
  }

  async shut() {
    if (!this.closeInfo) {
      try { this.ws.close(1000); } catch { /* not open */ }
      await within(this.closed, 5000, `${this.label} to close`).catch(() => this.ws.terminate());
    }
  }
}

// Opens an SDK-like socket: socket.info with the x-flowai-* headers, then the WebSocket.
async function openSdk(inst, { threadId, label, origin = ORIGIN, joinViaHeader = true } = {}) {
  const endpoint = await endpointOf(inst, { threadId: joinViaHeader ? threadId : undefined, origin });
  const s = new FlowSocket(endpoint, { label: label || `sdk ${threadId || ''}`, origin, threadId });
  await within(s.opened, 5000, `${s.label} to open`);
  return s;
}

async function workerOf(inst, s) {
  const m = await waitLog(inst, new RegExp(`ws_open conn=(\\d+) peer=127\\.0\\.0\\.1:${s.localPort} endpoint=flow`), 5000,
    `the ws_open of ${s.label} (port ${s.localPort})`);
  return Number(m[1]) % 2;
}

// Opens sockets with open() until one is on each of the two workers (SO_REUSEPORT picks); closes
// the rest. Resolves [socket on worker 0, socket on worker 1].
async function onBothWorkers(inst, open) {
  const by = [null, null];
  const extra = [];
  for (let i = 0; i < 24 && !(by[0] && by[1]); i++) {
    const s = await open(i);
    const w = await workerOf(inst, s);
    if (by[w]) extra.push(s); else by[w] = s;
  }
  for (const s of extra) await s.shut();
  assert.ok(by[0] && by[1], 'sockets on both workers');
  by[0].worker = 0;
  by[1].worker = 1;
  return by;
}

// An upgrade that must be refused: resolves { status, body }.
function refusedUpgrade(url, { origin } = {}) {
  return within(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { origin });
    ws.on('error', () => {});
    ws.once('open', () => { ws.terminate(); reject(new Error(`${url}: the upgrade was accepted`)); });
    ws.once('unexpected-response', (req, res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      const localPort = req.socket && req.socket.localPort;
      res.on('end', () => { resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), localPort }); req.destroy(); });
    });
  }), 5000, `the refusal of ${url}`);
}

// ------------------------------------------------------------------ shape checks

function assertReceived(payload, threadId, what = 'message.received') {
  assert.equal(payload.threadId, threadId, `${what}: threadId`);
  assert.ok(payload.originator && typeof payload.originator === 'object', `${what}: originator`);
  assert.ok(Array.isArray(payload.messages) && payload.messages.length > 0, `${what}: messages must be a non-empty array`);
  for (const m of payload.messages) {
    assert.equal(typeof m.fallback, 'string', `${what}: fallback`);
    assert.equal(m.silent, false, `${what}: silent`);
    assert.ok('replyTo' in m, `${what}: replyTo`);
    assert.ok(Array.isArray(m.actions), `${what}: actions must be an array`);
    assert.ok(Array.isArray(m.responses) && m.responses.length > 0, `${what}: responses must be a non-empty array`);
    for (const r of m.responses) {
      assert.equal(typeof r.type, 'string');
      assert.equal(typeof r.delay, 'number');
      assert.ok(r.payload && typeof r.payload === 'object');
    }
  }
}

function assertBotReply(msg, threadId, { text, textIncludes, replyTo } = {}) {
  assert.equal(msg.type, 'message.received', short(msg));
  assertReceived(msg.payload, threadId);
  const [m] = msg.payload.messages;
  assert.deepEqual({ userId: m.originator.userId, name: m.originator.name, role: m.originator.role }, BOT, 'the bot is the originator');
  assert.equal(m.responses[0].type, 'text');
  const got = m.responses[0].payload.text;
  if (text !== undefined) assert.equal(got, text);
  if (textIncludes !== undefined) assert.ok(got.includes(textIncludes), `the reply ${short(got)} should contain ${short(textIncludes)}`);
  if (replyTo !== undefined) assert.equal(m.replyTo, replyTo, 'replyTo');
  assert.equal(m.fallback, got, 'fallback is the reply text');
  return got;
}

const replyText = (msg) => msg.payload.messages[0].responses[0].payload.text;

// ================================================================== the main server
// Two workers, one configured client id, the default echo bot, no reply delay.

describe('flow: echo bot, browser, threads, history, publishes, tickets', () => {
  let srv;
  before(async () => {
    srv = await start({ env: { WSHUB_WORKERS: '2', WSHUB_API_KEY: API_KEY, WSHUB_FLOW_CLIENT_IDS: CLIENT_ID } });
  });
  after(async () => { if (srv) await srv.teardown(); });

  test("browser: the seed's vanilla-JS example at /examples/flow.html, in headless Chromium", T, async (t) => {
    // wshub serves the page it embeds, byte for byte the file in web/examples.
    const pageUrl = `${srv.url}/examples/flow.html?clientId=${encodeURIComponent(CLIENT_ID)}`;
    const served = await request(srv, { path: '/examples/flow.html' });
    assert.equal(served.status, 200, `GET /examples/flow.html: ${served.status} ${short(served.text)}`);
    assert.match(served.headers['content-type'] || '', /^text\/html/);
    assert.equal(served.text, fs.readFileSync(PAGE_FILE, 'utf8'), 'the served page is web/examples/flow.html');

    const { chromium } = require('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 20000 });
    try {
      const page = await browser.newPage();
      const problems = [];
      const sockets = [];
      const requests = [];
      page.on('console', (m) => { if (m.type() === 'error') problems.push(`console.error: ${m.text()}`); });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('request', (r) => requests.push(r.url()));
      page.on('websocket', (ws) => {
        sockets.push(ws.url());
        ws.on('framereceived', (f) => ALL_FRAMES.push({ label: 'browser', text: typeof f.payload === 'string' ? f.payload : f.payload.toString('utf8'), isBinary: typeof f.payload !== 'string' }));
      });
      // The keep-alive runs every 30 s: a fake clock lets the test move time on.
      await page.clock.install();
      await page.goto(pageUrl, { waitUntil: 'load', timeout: 10000 });

      const handle = await page.waitForFunction(() => {
        const log = window.flowLog || [];
        const ok = log.some((m) => m.type === 'message.delivered') && log.some((m) => m.type === 'message.received');
        return ok ? log : null;
      }, null, { timeout: 10000, polling: 50 });
      const log = await handle.jsonValue();

      // The page asked socket.info on its own origin, with the clientId (URL-encoded) and a sessionId.
      const info = requests.map((u) => new URL(u)).find((u) => u.pathname === '/socket.info');
      assert.ok(info, `the page requested socket.info: ${short(requests)}`);
      assert.equal(info.origin, srv.url);
      assert.equal(info.searchParams.get('clientId'), CLIENT_ID);
      assert.match(info.searchParams.get('sessionId'), /^\d+$/, 'sessionId = Date.now()');
      assert.equal(sockets.length, 1);
      assert.match(sockets[0], new RegExp(`^ws://127\\.0\\.0\\.1:${srv.port}/ws/[^/?#]+$`));

      // message.delivered: the seed's message, as sent (metadata {} added), then the bot's answer.
      const types = log.map((m) => m.type);
      assert.deepEqual(types.slice(0, 2), ['message.delivered', 'message.received'], `frames: ${short(log)}`);
      const delivered = log[0].payload;
      assert.equal(delivered.threadId, 'jane.doe');
      assert.equal(delivered.speech, 'event attachment');
      assert.deepEqual(delivered.attachment, { type: 'event', payload: { name: 'MY EVENT' } });
      assert.equal(delivered.originator.name, 'Jane Doe');
      assert.equal(delivered.originator.role, 'external');
      assert.deepEqual(delivered.originator.profile, { fullName: 'Jane Doe', firstName: 'Jane', lastName: 'Doe', gender: 'F',
        locale: 'en-US', timezone: -5, country: 'us', email: 'jane.doe@example.com',
        picture: 'https://en.wikipedia.org/wiki/File:YellowLabradorLooking_new.jpg' });
      assert.deepEqual(delivered.originator.metadata, { clientNumber: '12345', preference: 'A,B,G' });
      assert.deepEqual(delivered.metadata, {}, 'message.delivered always carries metadata');
      assertBotReply(log[1], 'jane.doe', { textIncludes: 'MY EVENT', replyTo: 'event attachment' });

      // Shown in <pre id="log"> as well, one JSON line per message.
      const pre = await page.textContent('#log');
      for (const m of log) assert.ok(pre.includes(JSON.stringify(m)), `#log shows ${short(m)}`);

      // 30 s later the keep-alive pings; the pong lands in the log too.
      await page.clock.runFor(30 * 1000 + 10);
      const pongs = await page.waitForFunction(() => (window.flowLog || []).filter((m) => m.type === 'pong').length, null,
        { timeout: 5000, polling: 50 });
      assert.equal(await pongs.jsonValue(), 1, 'one keep-alive ping after 30 s');

      const shot = path.join(TMP, 'flow-page.png');
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(fs.statSync(shot).size > 0);
      t.diagnostic(`screenshot: ${shot}`);
      assert.deepEqual(problems, [], 'no console errors or page errors');

      // Without ?clientId= the page keeps the seed's placeholder, which this server does not know:
      // socket.info answers 400 and the page reports it instead of opening a socket.
      const bare = await browser.newPage();
      const bareSockets = [];
      bare.on('websocket', (ws) => bareSockets.push(ws.url()));
      await bare.goto(pageUrl.replace(/\?.*$/, ''), { waitUntil: 'load', timeout: 10000 });
      await bare.waitForFunction(() => document.getElementById('log').textContent.includes('Error while fetching wss url'), null,
        { timeout: 10000, polling: 50 });
      assert.match(await bare.textContent('#log'), /HTTP 400 .*"status":"error"/);
      assert.deepEqual(await bare.evaluate(() => window.flowLog), []);
      assert.deepEqual(bareSockets, []);
    } finally {
      await browser.close();
    }

    // The thread the page used keeps both sides.
    const h = await history(srv, 'jane.doe');
    assert.deepEqual(h.map((e) => e.type), ['message.send', 'message.received']);
    assert.equal(h[0].payload.speech, 'event attachment');
    assert.deepEqual(h[0].payload.attachment, { type: 'event', payload: { name: 'MY EVENT' } });
  });

  test('two SDK sockets on one thread, on the two workers: a message.send from either reaches both; the history has both sides in order', T, async () => {
    const threadId = unique('shared-thread');
    const [a, b] = await onBothWorkers(srv, (i) => openSdk(srv, { threadId, label: `thread socket ${i}` }));
    try {
      a.label = 'A (worker 0)';
      b.label = 'B (worker 1)';
      // A speaks: A gets delivered + the reply; B (same thread, never sent anything) gets the reply.
      a.sendMessage('hello from A', { traceId: 1, nonce: 'A-SECRET' });
      const da = await a.next('message.delivered');
      assert.equal(da.payload.speech, 'hello from A');
      assert.equal(da.payload.nonce, undefined);
      const ra = await a.next('message.received');
      assertBotReply(ra, threadId, { textIncludes: 'hello from A', replyTo: 'hello from A' });
      const rb = await b.next('message.received');
      assert.deepEqual(rb, ra, 'B gets the same reply');
      // B speaks: both get B's reply.
      b.sendMessage('hello from B', { traceId: 2 });
      const db = await b.next('message.delivered');
      assert.equal(db.payload.speech, 'hello from B');
      const rb2 = await b.next('message.received');
      assertBotReply(rb2, threadId, { textIncludes: 'hello from B', replyTo: 'hello from B' });
      assert.deepEqual(await a.next('message.received'), rb2, 'A gets B\'s reply');
      // Nothing else arrived: message.delivered goes to the sender only.
      await Promise.all([a.pingPong(), b.pingPong()]);
      assert.deepEqual(a.types, ['message.delivered', 'message.received', 'message.received', 'pong']);
      assert.deepEqual(b.types, ['message.received', 'message.delivered', 'message.received', 'pong']);

      for (const viaQuery of [false, true]) {
        const h = await history(srv, threadId, { viaQuery });
        assert.deepEqual(h.map((e) => [e.type, e.type === 'message.send' ? e.payload.speech : replyText(e)]), [
          ['message.send', 'hello from A'], ['message.received', replyText(ra)],
          ['message.send', 'hello from B'], ['message.received', replyText(rb2)]], `history (${viaQuery ? 'query' : 'headers'})`);
        assert.deepEqual(h[0].payload, da.payload, 'the history keeps the delivered payload (no nonce)');
        assert.deepEqual(h[1].payload, ra.payload, 'the history keeps the reply as sent');
        for (let i = 1; i < h.length; i++) assert.ok(h[i].createdAt >= h[i - 1].createdAt, 'createdAt in order');
      }
      assert.doesNotMatch(JSON.stringify(await history(srv, threadId)), /A-SECRET/, 'the nonce (the secret) is never kept');
    } finally { await a.shut(); await b.shut(); }
  });

  test('GET /thread.history: unknown thread -> empty list; unknown or missing clientId, missing threadId -> 400', T, async () => {
    assert.deepEqual(await history(srv, unique('never-used')), []);
    for (const headers of [{ 'x-flowai-clientid': 'dW5rbm93bg==', 'x-flowai-threadid': 't' }, { 'x-flowai-threadid': 't' },
      { 'x-flowai-clientid': CLIENT_ID }]) {
      const r = await request(srv, { path: '/thread.history', headers });
      assert.equal(r.status, 400, `${short(headers)} -> ${r.status} ${r.text}`);
      assert.equal(r.json.status, 'error');
      assert.equal(typeof r.json.payload.message, 'string');
    }
  });

  test('the default echo bot: the reply contains the speech (unicode too), replyTo is the speech; an event is named', T, async () => {
    const threadId = unique('echo');
    const s = await openSdk(srv, { threadId });
    try {
      for (const speech of ['Hi there!', 'Grüße, 你好 — ✓ "quoted" \\ back\\slash', '  spaced  ']) {
        s.sendMessage(speech);
        await s.next('message.delivered');
        assertBotReply(await s.next('message.received'), threadId, { textIncludes: speech, replyTo: speech });
      }
      s.sendMessage('event attachment', { attachment: { type: 'event', payload: { name: 'CHECKOUT_STARTED' } } });
      await s.next('message.delivered');
      assertBotReply(await s.next('message.received'), threadId, { textIncludes: 'CHECKOUT_STARTED' });
    } finally { await s.shut(); }
  });

  test('the echo bot echoes a long speech whole (3000 characters)', T, async () => {
    const threadId = unique('echo-long');
    const s = await openSdk(srv, { threadId });
    try {
      const speech = `${'long speech '.repeat(250)}THE END`;
      s.sendMessage(speech);
      await s.next('message.delivered');
      assertBotReply(await s.next('message.received', { timeout: 3000 }), threadId, { textIncludes: speech });
    } finally { await s.shut(); }
  });

  test('the echo bot answers a long multi-byte speech (600 × "é") with valid UTF-8 containing it', T, async () => {
    const threadId = unique('echo-utf8');
    const s = await openSdk(srv, { threadId });
    try {
      const speech = 'é'.repeat(600);
      s.sendMessage(speech);
      await s.next('message.delivered');
      const reply = await s.next('message.received', { timeout: 3000 });
      assertBotReply(reply, threadId, { textIncludes: speech });
    } finally { await s.shut(); }
  });

  test('x-flowai-threadid given to socket.info joins that thread from the start: a publish arrives before any message.send', T, async () => {
    const threadId = unique('joined-early');
    const s = await openSdk(srv, { threadId });
    const stranger = await openSdk(srv, { label: 'no thread' });
    try {
      const r = await publishOk(srv, { channel: `thread:${threadId}`, event: 'message.received', data: { text: 'Welcome back!' } });
      assert.equal(r.delivered, 1, 'exactly the joined socket');
      const m = await s.next('message.received');
      assertReceived(m.payload, threadId);
      assert.equal(replyText(m), 'Welcome back!');
      await stranger.pingPong();
      assert.deepEqual(stranger.types, ['pong'], 'a socket without a thread gets nothing');
    } finally { await s.shut(); await stranger.shut(); }
  });

  test('a message.send moves a socket to its thread: publishes to the old thread stop, the new one arrives', T, async () => {
    const first = unique('first-thread');
    const second = unique('second-thread');
    const s = await openSdk(srv, { threadId: first });
    try {
      s.threadId = second;
      s.sendMessage('moving over');
      await s.next('message.delivered');
      assertBotReply(await s.next('message.received'), second, { textIncludes: 'moving over' });
      assert.equal((await publishOk(srv, { channel: `thread:${first}`, event: 'message.received', data: { text: 'old' } })).delivered, 0);
      assert.equal((await publishOk(srv, { channel: `thread:${second}`, event: 'message.received', data: { text: 'new' } })).delivered, 1);
      assert.equal(replyText(await s.next('message.received')), 'new');
    } finally { await s.shut(); }
  });

  test('a publish to thread:<id>: a `messages` array is the payload (threadId set); `text` is one text response; both in the history', T, async () => {
    const threadId = unique('published');
    const a = await openSdk(srv, { threadId, label: 'joined via header' });
    const b = await openSdk(srv, { label: 'joined via message.send', joinViaHeader: false });
    try {
      b.threadId = threadId;
      b.sendMessage('I am here too');
      await b.next('message.delivered');
      const botReply = await b.next('message.received');
      await a.next('message.received');

      const data = {
        threadId: 'someone-else', // replaced by the channel's thread
        originator: { name: 'Agent Smith', role: 'agent', profile: { fullName: 'Agent Smith' } },
        messages: [{ fallback: 'Our offer', silent: false, replyTo: null,
          originator: { userId: 'agent|7', name: 'Agent Smith', role: 'agent' }, actions: [],
          responses: [{ type: 'card', delay: 0, payload: { title: 'Spring sale', buttons: [{ type: 'url', label: 'Open', value: 'https://shop.example.com/sale' }] } },
            { type: 'text', delay: 250, payload: { text: 'Anything else?', quickReplies: [{ type: 'text', label: 'No', value: 'no' }] } }] }],
      };
      const r1 = await publishOk(srv, { channel: `thread:${threadId}`, event: 'agent.message', data });
      assert.equal(r1.delivered, 2);
      const expected = { ...data, threadId };
      for (const s of [a, b]) {
        const m = await s.next('message.received');
        assert.deepEqual(m.payload, expected, `${s.label}: the published data is the payload`);
      }

      const r2 = await publishOk(srv, { channel: `thread:${threadId}`, event: 'newMessage', data: { text: 'An agent joined the chat' } });
      assert.equal(r2.delivered, 2);
      for (const s of [a, b]) {
        const m = await s.next('message.received');
        assertReceived(m.payload, threadId);
        assert.equal(m.payload.messages.length, 1);
        assert.deepEqual(m.payload.messages[0].responses, [{ type: 'text', delay: 0, payload: { text: 'An agent joined the chat' } }]);
      }

      const h = await history(srv, threadId);
      assert.deepEqual(h.map((e) => e.type), ['message.send', 'message.received', 'message.received', 'message.received']);
      assert.deepEqual(h[1].payload, botReply.payload);
      assert.deepEqual(h[2].payload, expected);
      assert.equal(replyText(h[3]), 'An agent joined the chat');

      // A thread nobody is connected to: delivered 0, still kept.
      const lonely = unique('lonely');
      assert.equal((await publishOk(srv, { channel: `thread:${lonely}`, event: 'message.received', data: { text: 'left a note' } })).delivered, 0);
      const hl = await history(srv, lonely);
      assert.equal(hl.length, 1);
      assert.equal(replyText(hl[0]), 'left a note');
    } finally { await a.shut(); await b.shut(); }
  });

  test('GET /thread.unnoticed lists the bot and published messages after the last thread.noticed', T, async () => {
    const threadId = unique('unnoticed');
    const s = await openSdk(srv, { threadId });
    try {
      s.sendMessage('first question');
      await s.next('message.delivered');
      const r1 = await s.next('message.received');
      let u = await history(srv, threadId, { unnoticed: true });
      assert.deepEqual(u.map((e) => e.payload), [r1.payload], 'before any thread.noticed: every bot reply, no user message');

      s.send({ type: 'thread.noticed', payload: { threadId } });
      await s.pingPong(); // the notice was handled
      assert.deepEqual(await history(srv, threadId, { unnoticed: true }), [], 'all noticed');

      s.sendMessage('second question');
      await s.next('message.delivered');
      const r2 = await s.next('message.received');
      await publishOk(srv, { channel: `thread:${threadId}`, event: 'message.received', data: { text: 'agent: hello' } });
      const p = await s.next('message.received');
      u = await history(srv, threadId, { unnoticed: true });
      assert.deepEqual(u.map((e) => e.payload), [r2.payload, p.payload], 'after the notice: the later reply and the publish');
      assert.deepEqual((await history(srv, threadId, { unnoticed: true, viaQuery: true })).map((e) => e.payload), [r2.payload, p.payload]);

      s.send({ type: 'thread.noticed', payload: { threadId } });
      await s.pingPong();
      assert.deepEqual(await history(srv, threadId, { unnoticed: true }), []);
      assert.equal((await history(srv, threadId)).length, 5, 'the history keeps everything');
    } finally { await s.shut(); }
  });

  test('a ticket redeemed on one worker cannot be reused on the other (404 from both workers)', T, async () => {
    const endpoint = await endpointOf(srv);
    const first = new FlowSocket(endpoint, { label: 'redeemer' });
    await within(first.opened, 5000, 'the first use');
    try {
      const w = await workerOf(srv, first);
      const seen = new Set();
      for (let i = 0; i < 24 && seen.size < 2; i++) {
        const r = await refusedUpgrade(endpoint);
        assert.equal(r.status, 404, `reuse ${i}: ${r.status} ${r.body}`);
        assert.equal(JSON.parse(r.body).status, 'error');
        const m = await waitLog(srv, new RegExp(`http_refused conn=(\\d+) peer=127\\.0\\.0\\.1:${r.localPort} endpoint=flow status=404`), 5000,
          `the refusal of port ${r.localPort} in the log`);
        seen.add(Number(m[1]) % 2);
      }
      assert.ok(seen.has(1 - w), `a reuse attempt landed on the other worker (redeemed on ${w}, refused on ${[...seen]})`);
      await first.pingPong();
    } finally { await first.shut(); }
    assert.equal((await refusedUpgrade(endpoint)).status, 404, 'still refused after the first connection closed');
  });

  test('a ticket raced by 12 simultaneous upgrades is redeemed exactly once', T, async () => {
    const endpoint = await endpointOf(srv);
    const sockets = Array.from({ length: 12 }, (_, i) => new FlowSocket(endpoint, { label: `racer ${i}` }));
    const results = await Promise.all(sockets.map((s) => within(s.opened.then(() => 101, (e) => e.status || String(e)), 5000, s.label)));
    try {
      assert.equal(results.filter((r) => r === 101).length, 1, `results: ${results}`);
      assert.equal(results.filter((r) => r === 404).length, 11, `results: ${results}`);
    } finally { for (const s of sockets) await s.shut(); }
  });

  test('errors keep the socket open: unknown type, non-JSON, bad message.send, binary frames -> {"type":"error","message"}', T, async () => {
    const s = await openSdk(srv);
    try {
      for (const bad of ['{"type":"message.teleport","payload":{}}', 'not json', '[1,2]', '{"type":7}', '{"payload":{}}',
        '{"type":"message.send"}', '{"type":"message.send","payload":"text"}', '{"type":"message.send","payload":{"speech":"no thread"}}',
        '{"type":"message.send","payload":{"threadId":"t-1"}}', '{"type":"message.send","payload":{"threadId":"","speech":"empty thread"}}',
        '{"type":"message.send","payload":{"threadId":7,"speech":"numeric thread"}}']) {
        s.send(bad);
        const m = await s.next();
        assert.equal(m.type, 'error', `${bad} -> ${short(m)}`);
        assert.equal(typeof m.message, 'string');
        assert.deepEqual(Object.keys(m).sort(), ['message', 'type'], 'the error is {"type":"error","message"}');
      }
      s.ws.send(Buffer.from('{"type":"ping"}'), { binary: true });
      const b = await s.next();
      assert.equal(b.type, 'error', `a binary frame -> ${short(b)}`);
      assert.equal(typeof b.message, 'string');
      await s.pingPong();
    } finally { await s.shut(); }
  });
});

// ================================================================== the bot: rules and delay

describe('flow: bot rules from flow.bot_file, flow.reply_delay_ms', () => {
  const DELAY = 600;
  let srv;
  before(async () => {
    const botFile = path.join(TMP, 'flow-bot.json');
    fs.writeFileSync(botFile, JSON.stringify({ rules: [
      { match: 'opening hours', reply: 'We are open 9:00-17:00, Monday to Saturday.', quick_replies: ['Monday', 'Saturday', 'Talk to a human'] },
      { event: 'MY EVENT', reply: 'Your event arrived.' },
      { match: 'HELLO', reply: 'Hi! How can I help?' },
    ] }, null, 2));
    srv = await start({ env: { WSHUB_WORKERS: '2', WSHUB_API_KEY: API_KEY, WSHUB_FLOW_CLIENT_IDS: CLIENT_ID,
      WSHUB_FLOW_BOT_FILE: botFile, WSHUB_FLOW_REPLY_DELAY_MS: String(DELAY) } });
  });
  after(async () => { if (srv) await srv.teardown(); });

  // message.send -> message.delivered, agent.typing, then (DELAY later) the reply.
  async function ask(s, speech, extra) {
    const t0 = Date.now();
    s.sendMessage(speech, extra);
    await s.next('message.delivered');
    const typing = await s.next('agent.typing');
    assert.equal(typing.payload.threadId, s.threadId);
    const { msg, at } = await s.waitFor((m) => m.type === 'message.received', 'the delayed reply', { from: s.cursor });
    assert.equal(s.frames[s.cursor].msg.type, 'message.received', 'nothing between agent.typing and the reply');
    s.cursor++;
    return { msg, elapsed: at - t0 };
  }

  test('a text rule (case-insensitive substring) answers with its reply and quick replies', T, async () => {
    const s = await openSdk(srv, { threadId: unique('rules') });
    try {
      const { msg } = await ask(s, 'What are your OPENING HOURS today?');
      assertBotReply(msg, s.threadId, { text: 'We are open 9:00-17:00, Monday to Saturday.', replyTo: 'What are your OPENING HOURS today?' });
      assert.deepEqual(msg.payload.messages[0].responses[0].payload.quickReplies,
        ['Monday', 'Saturday', 'Talk to a human'].map((q) => ({ type: 'text', label: q, value: q })));
      const hi = await ask(s, 'well hello there');
      assertBotReply(hi.msg, s.threadId, { text: 'Hi! How can I help?' });
      assert.equal(hi.msg.payload.messages[0].responses[0].payload.quickReplies, undefined, 'no quick replies without the rule giving some');
    } finally { await s.shut(); }
  });

  test('an event rule answers the seed\'s event attachment; no rule -> the echo', T, async () => {
    const s = await openSdk(srv, { threadId: unique('rules-event') });
    try {
      const ev = await ask(s, 'event attachment', { attachment: { type: 'event', payload: { name: 'MY EVENT' } } });
      assertBotReply(ev.msg, s.threadId, { text: 'Your event arrived.' });
      const other = await ask(s, 'event attachment', { attachment: { type: 'event', payload: { name: 'OTHER EVENT' } } });
      assertBotReply(other.msg, s.threadId, { textIncludes: 'OTHER EVENT' });
      const echo = await ask(s, 'nothing matches this sentence');
      assertBotReply(echo.msg, s.threadId, { textIncludes: 'nothing matches this sentence', replyTo: 'nothing matches this sentence' });
    } finally { await s.shut(); }
  });

  test(`reply_delay_ms=${DELAY}: agent.typing right after message.delivered, the reply about ${DELAY} ms later, to every socket of the thread`, T, async () => {
    const threadId = unique('delayed');
    const a = await openSdk(srv, { threadId, label: 'asker' });
    const b = await openSdk(srv, { threadId, label: 'listener' });
    try {
      const t0 = Date.now();
      a.sendMessage('hello, is anyone there?');
      const d = await a.next('message.delivered');
      const typing = await a.next('agent.typing');
      const typingAt = a.frames[a.cursor - 1].at;
      assert.ok(typingAt - t0 < DELAY - 100, `agent.typing came ${typingAt - t0} ms after the send, not at once`);
      assert.deepEqual(typing, { type: 'agent.typing', payload: { threadId } });
      assert.equal(d.payload.speech, 'hello, is anyone there?');
      const { msg, at } = await a.waitFor((m) => m.type === 'message.received', 'the reply', { from: a.cursor });
      const elapsed = at - t0;
      assert.ok(elapsed >= DELAY - 20 && elapsed < DELAY + 1500, `the reply came ${elapsed} ms after the send (delay ${DELAY})`);
      assertBotReply(msg, threadId, { text: 'Hi! How can I help?' });
      const rb = await b.waitFor((m) => m.type === 'message.received', 'the reply at the listener');
      assert.deepEqual(rb.msg, msg);
      assert.deepEqual((await history(srv, threadId)).map((e) => e.type), ['message.send', 'message.received']);
    } finally { await a.shut(); await b.shut(); }
  });

  test('a delayed reply still reaches the thread (other sockets, history) when the asking socket closes first', T, async () => {
    const threadId = unique('asker-left');
    const a = await openSdk(srv, { threadId, label: 'asker' });
    const b = await openSdk(srv, { threadId, label: 'listener' });
    try {
      a.sendMessage('hello and goodbye');
      await a.next('message.delivered');
      await a.next('agent.typing');
      await a.shut();
      const r = await b.waitFor((m) => m.type === 'message.received', 'the reply to the socket that left', { timeout: DELAY + 2000 });
      assertBotReply(r.msg, threadId, { text: 'Hi! How can I help?' });
    } finally {
      await a.shut();
      await b.shut();
    }
    assert.deepEqual((await history(srv, threadId)).map((e) => e.type), ['message.send', 'message.received'],
      'the history has the question and its answer');
  });
});

// ================================================================== tickets' TTL and the idle timeout

describe('flow: flow.token_ttl_ms=1000, flow.idle_timeout_ms=800', () => {
  const TTL = 1000;
  const IDLE = 800;
  let srv;
  before(async () => {
    srv = await start({ env: { WSHUB_WORKERS: '2', WSHUB_API_KEY: API_KEY, WSHUB_FLOW_CLIENT_IDS: CLIENT_ID,
      WSHUB_FLOW_TOKEN_TTL_MS: String(TTL), WSHUB_FLOW_IDLE_TIMEOUT_MS: String(IDLE) } });
  });
  after(async () => { if (srv) await srv.teardown(); });

  test('an endpoint is usable within flow.token_ttl_ms and refused with 404 after it', T, async () => {
    const fresh = await endpointOf(srv, { viaQuery: true });
    const stale = await endpointOf(srv, { viaQuery: true });
    const t0 = Date.now();
    await sleep(TTL / 2);
    const s = new FlowSocket(fresh, { label: 'within the ttl' });
    await within(s.opened, 5000, 'the upgrade within the ttl');
    assert.ok(Date.now() - t0 < TTL, 'used within the ttl');
    await s.shut();
    await sleep(TTL + 200 - (Date.now() - t0));
    const r = await refusedUpgrade(stale);
    assert.equal(r.status, 404, `expired: ${r.status} ${r.body}`);
    assert.equal(JSON.parse(r.body).status, 'error');
  });

  test(`a silent socket is closed with 1000 "idle timeout" after about ${IDLE} ms`, T, async () => {
    const s = await openSdk(srv, { label: 'silent' });
    const info = await within(s.closed, IDLE + 3000, 'the idle close');
    const quiet = info.at - s.openedAt;
    assert.deepEqual({ code: info.code, reason: info.reason }, { code: 1000, reason: 'idle timeout' });
    assert.ok(quiet >= IDLE - 50 && quiet < IDLE + 1500, `closed after ${quiet} ms of silence (idle ${IDLE})`);
    assert.deepEqual(s.frames, [], 'no message before the close');
  });

  test('WebSocket ping frames alone keep a socket open (any frame resets the timer); silence then closes it', T, async () => {
    const s = await openSdk(srv, { label: 'ws pings' });
    try {
      const until = Date.now() + 3 * IDLE;
      let sent = 0;
      while (Date.now() < until) {
        assert.equal(s.closeInfo, null, `closed while pinging every ${IDLE / 4} ms: ${short(s.closeInfo)}`);
        s.ws.ping();
        sent++;
        await sleep(IDLE / 4);
      }
      assert.equal(s.closeInfo, null, `closed while pinging: ${short(s.closeInfo)}`);
      assert.ok(s.wsPongs >= sent - 1, `ping frames are answered with pong frames (${s.wsPongs}/${sent})`);
      assert.deepEqual(s.frames, [], 'ping frames get no JSON answer');
      const stopped = Date.now();
      const info = await within(s.closed, IDLE + 3000, 'the idle close after the pings stop');
      assert.deepEqual({ code: info.code, reason: info.reason }, { code: 1000, reason: 'idle timeout' });
      assert.ok(info.at - stopped >= IDLE - 300, `closed ${info.at - stopped} ms after the last ping`);
    } finally { await s.shut(); }
  });

  test('JSON pings keep a socket open, each answered with {"type":"pong"}', T, async () => {
    const s = await openSdk(srv, { label: 'json pings' });
    try {
      const until = Date.now() + 3 * IDLE;
      let n = 0;
      while (Date.now() < until) {
        assert.deepEqual(await s.pingPong(), { type: 'pong' });
        n++;
        await sleep(IDLE / 4);
      }
      assert.equal(s.closeInfo, null, `closed while sending JSON pings: ${short(s.closeInfo)}`);
      assert.equal(s.frames.length, n);
    } finally { await s.shut(); }
  });
});

// ================================================================== CORS and the Origin allow-list

describe('flow: flow.allowed_origins', () => {
  let srv;
  before(async () => {
    srv = await start({ env: { WSHUB_WORKERS: '2', WSHUB_API_KEY: API_KEY, WSHUB_FLOW_CLIENT_IDS: CLIENT_ID,
      WSHUB_FLOW_ALLOWED_ORIGINS: `${ORIGIN},http://localhost:3000` } });
  });
  after(async () => { if (srv) await srv.teardown(); });

  const PREFLIGHT = { 'Access-Control-Request-Method': 'GET',
    'Access-Control-Request-Headers': 'content-type,x-flowai-clientid,x-flowai-sessionid,x-flowai-threadid,x-flowai-secret,x-flowai-ott' };

  test('preflight from an allowed origin: 2xx, Access-Control-Allow-Origin, the x-flowai-* headers allowed', T, async () => {
    for (const p of ['/socket.info', '/thread.history', '/thread.unnoticed']) {
      const r = await request(srv, { method: 'OPTIONS', path: p, headers: { Origin: ORIGIN, ...PREFLIGHT } });
      assert.ok(r.status >= 200 && r.status < 300, `${p} preflight: ${r.status} ${r.text}`);
      assert.equal(r.headers['access-control-allow-origin'], ORIGIN, p);
      const allowed = (r.headers['access-control-allow-headers'] || '').toLowerCase();
      for (const h of ['content-type', 'x-flowai-clientid', 'x-flowai-sessionid', 'x-flowai-threadid', 'x-flowai-secret', 'x-flowai-ott']) {
        assert.ok(allowed.includes(h), `${p}: allow-headers lacks ${h}: ${allowed}`);
      }
      assert.match(r.headers['access-control-allow-methods'] || '', /\bGET\b/, p);
    }
    const g = await socketInfo(srv, { origin: ORIGIN });
    assert.equal(g.status, 200, g.text);
    assert.equal(g.headers['access-control-allow-origin'], ORIGIN);
    const h = await request(srv, { path: '/thread.history', headers: { Origin: 'http://localhost:3000', 'x-flowai-clientid': CLIENT_ID, 'x-flowai-threadid': 't' } });
    assert.equal(h.status, 200, h.text);
    assert.equal(h.headers['access-control-allow-origin'], 'http://localhost:3000');
  });

  test('a disallowed Origin: 403 on the preflight, on socket.info, on the history and on the upgrade', T, async () => {
    const pre = await request(srv, { method: 'OPTIONS', path: '/socket.info', headers: { Origin: OTHER_ORIGIN, ...PREFLIGHT } });
    assert.equal(pre.status, 403, `preflight: ${pre.status}`);
    assert.notEqual(pre.headers['access-control-allow-origin'], OTHER_ORIGIN);
    assert.notEqual(pre.headers['access-control-allow-origin'], '*');
    const si = await socketInfo(srv, { origin: OTHER_ORIGIN });
    assert.equal(si.status, 403, si.text);
    assert.equal(si.json.status, 'error');
    assert.equal(typeof si.json.payload.message, 'string');
    const h = await request(srv, { path: '/thread.history', headers: { Origin: OTHER_ORIGIN, 'x-flowai-clientid': CLIENT_ID, 'x-flowai-threadid': 't' } });
    assert.equal(h.status, 403, h.text);

    // A ticket from a server-side call (no Origin), presented by a page on another origin: 403.
    const endpoint = await endpointOf(srv);
    const r = await refusedUpgrade(endpoint, { origin: OTHER_ORIGIN });
    assert.equal(r.status, 403, `upgrade: ${r.status} ${r.body}`);
    // The allowed origin, and a client without Origin (not a browser), are served.
    const ok = await openSdk(srv, { origin: ORIGIN, label: 'allowed origin' });
    await ok.pingPong();
    await ok.shut();
    const noOrigin = new FlowSocket(await endpointOf(srv), { label: 'no origin' });
    await within(noOrigin.opened, 5000, 'the upgrade without Origin');
    await noOrigin.pingPong();
    await noOrigin.shut();
  });
});

// ================================================================== shutdown

describe('flow: SIGTERM', () => {
  let srv;
  before(async () => {
    srv = await start({ env: { WSHUB_WORKERS: '2', WSHUB_API_KEY: API_KEY, WSHUB_FLOW_CLIENT_IDS: CLIENT_ID,
      WSHUB_FLOW_REPLY_DELAY_MS: '5000' } });
  });
  after(async () => { if (srv && srv.alive()) await srv.stop(); });

  test('SIGTERM closes every flow socket with 1001 and no goodbye message (a pending delayed reply too); the daemon exits 0', T, async () => {
    const threadId = unique('shutdown');
    const [a, b] = await onBothWorkers(srv, (i) => openSdk(srv, { threadId, label: `shutdown socket ${i}` }));
    const idle = await openSdk(srv, { label: 'idle' });
    // a has a bot reply pending (reply_delay_ms 5000) when the signal comes.
    a.sendMessage('answer me later');
    await a.next('message.delivered');
    await a.next('agent.typing');
    const before = [a, b, idle].map((s) => s.frames.length);
    const t0 = Date.now();
    srv.child.kill('SIGTERM');
    for (const [i, s] of [a, b, idle].entries()) {
      const info = await within(s.closed, 10000, `${s.label} to be closed on SIGTERM`);
      assert.equal(info.code, 1001, `${s.label}: close code (${short(info)})`);
      assert.equal(s.frames.length, before[i], `${s.label}: no message before the close: ${short(s.frames.slice(before[i]).map((f) => f.msg))}`);
    }
    const exit = await within(srv.exited, 10000, 'wshubd to exit after SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, `exit after SIGTERM (${Date.now() - t0} ms)`);
    const log = srv.log();
    const m = SANITIZER.exec(log);
    assert.equal(m, null, `sanitizer report:\n${m ? log.slice(Math.max(0, m.index - 200), m.index + 3000) : ''}`);
  });
});

// ================================================================== every frame of every test

test('only the server message types the SDK knows ever arrived (every frame of every test above, the browser\'s too)', (t) => {
  assert.ok(ALL_FRAMES.length > 0, 'no frame was collected');
  const bad = [];
  const seen = new Set();
  for (const f of ALL_FRAMES) {
    let msg = null;
    try { msg = JSON.parse(f.text); } catch { /* reported below */ }
    if (f.isBinary || !msg || typeof msg !== 'object' || !ALLOWED_TYPES.includes(msg.type)) bad.push(`${f.label}: ${short(f.text)}`);
    else seen.add(msg.type);
  }
  assert.deepEqual(bad, [], 'frames the SDK would report as errors');
  t.diagnostic(`${ALL_FRAMES.length} frames checked; types seen: ${[...seen].sort().join(', ')}`);
});
