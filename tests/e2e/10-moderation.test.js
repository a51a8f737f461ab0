'use strict';
// API A — Chatsight-style moderation at /text/moderation (PROTOCOLS.md §0, §A), beyond the
// shared acceptance tests (shared/acceptance/tests/10-moderation.test.js): the seed document's
// own `websocket`-package client as a child process, out-of-order answers under the delay
// knob (correlated, none lost, none duplicated), the in-flight limit, every form of the auth
// failure (101 + TCP reset, http401, ?api_key=), POST /text/moderation (shape, 400/401,
// keep-alive, pipelining in order, a healthz behind a delayed answer), the classifier through
// the API (labelled set, obfuscation, Scunthorpe, determinism across connections, workers and
// transports), the code-point sample limit, binary frames, metrics, clients that vanish with
// requests in flight, and SIGTERM with requests in flight or still being scored.
// Each server is a private wshubd (lib/server.js; teardown fails on sanitizer reports, death
// or a non-zero exit). Every wait is bounded, and event-driven where the server gives an
// event to wait for (answers, pongs as fences, closes, process exit).
//   WSHUB_BIN   the binary under test (e.g. build-asan/wshubd)
const { test, describe, before, after } = require('node:test');
const { sleep, within, waitFor, httpRequest, parseMetrics } = require('./lib/util');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const WebSocket = require('ws');
const WebSocketClient = require('websocket').client;

const { start, ROOT, SANITIZER } = require('./lib/server');

const KEYS = ['e2e-mod-key-alpha-5c1d', 'e2e-mod-key-beta-93ab'];
const KEY = KEYS[0];
const T = { timeout: 30000 };
const SEED_CLIENT = path.join(__dirname, 'clients', 'moderation-seed-client.js');
const LABELLED = path.join(ROOT, 'tests', 'moderation', 'labelled.jsonl');
const API = 'chatsight-lang-text';
const SCORE_KEYS = ['engine1', 'engine2', 'engine3', 'suggestedAction', 'patches', 'insights'];

// Only what a test sets: no WSHUB_* from the caller's environment leaks into a server.
const BASE_ENV = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('WSHUB_') && k !== 'WSHUB_BIN')
  .map((k) => [k, undefined]));
async function startServer(env = {}, opts = {}) {
  const full = { ...BASE_ENV, WSHUB_WORKERS: '2', WSHUB_MODERATION_KEYS: KEYS.join(','), ...env };
  for (const k of Object.keys(full)) if (full[k] === undefined) delete full[k];
  const saved = {};
  for (const k of Object.keys(BASE_ENV)) { saved[k] = process.env[k]; delete process.env[k]; }
  try {
    return await start({ ...opts, env: full });
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
  }
}

let uniq = 0;
const unique = (p) => `${p}-${++uniq}-${crypto.randomBytes(3).toString('hex')}`;


// ------------------------------------------------------------------ an inbox to await

class Inbox {
  constructor(label) { this.label = label; this.items = []; this.waiters = []; this.endInfo = null; }
  push(v) {
    const w = this.waiters.shift();
    if (w) { clearTimeout(w.timer); w.resolve(v); } else this.items.push(v);
  }
  end(info) {
    this.endInfo = info;
    for (const w of this.waiters.splice(0)) { clearTimeout(w.timer); w.reject(new Error(`${this.label}: closed ${JSON.stringify(info)} while waiting for ${w.what}`)); }
  }
  next({ timeout = 5000, what = 'a message' } = {}) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    if (this.endInfo) return Promise.reject(new Error(`${this.label}: closed ${JSON.stringify(this.endInfo)} before ${what}`));
    return new Promise((resolve, reject) => {
      const w = { resolve, reject, what, timer: setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`${this.label}: no ${what} within ${timeout} ms`));
      }, timeout) };
      this.waiters.push(w);
    });
  }
  drain() { return this.items.splice(0); }
}

// Parsed JSON with the exact text it came from (non-enumerable: deepEqual ignores it).
function parseMsg(text) {
  let v;
  try { v = JSON.parse(text); } catch { v = { __unparseable: text }; }
  if (v && typeof v === 'object') Object.defineProperty(v, 'raw', { value: text, enumerable: false });
  return v;
}

// ------------------------------------------------------------------ clients

// The documented client: `websocket`'s WebSocketClient, connect(url, null, null, headers).
// Resolves once `connect` fired (the 101 arrived); rejects on connectFailed.
function modOpen(inst, { key = KEY, query = '', headers, label = 'moderation' } = {}) {
  const url = `${inst.wsUrl}/text/moderation${query}`;
  const hdrs = headers || (key === null ? {} : { 'x-chatsight-api-auth': key });
  return new Promise((resolve, reject) => {
    const client = new WebSocketClient();
    const timer = setTimeout(() => { client.abort(); reject(new Error(`${label}: no connect within 5 s`)); }, 5000);
    client.on('connectFailed', (e) => { clearTimeout(timer); reject(e); });
    client.on('connect', (connection) => {
      clearTimeout(timer);
      const inbox = new Inbox(label);
      const pongs = new Inbox(`${label} pongs`);
      let closeInfo = null;
      let onClose;
      const closed = new Promise((r) => { onClose = r; });
      connection.on('message', (m) => {
        if (m.type === 'utf8') inbox.push(parseMsg(m.utf8Data));
        else inbox.push({ __binary: m.binaryData });
      });
      connection.on('pong', (d) => pongs.push(Buffer.from(d).toString('utf8')));
      connection.on('error', () => { /* the close that follows says it */ });
      connection.on('close', (code, reason) => {
        closeInfo = { code, reason };
        inbox.end(closeInfo);
        pongs.end(closeInfo);
        onClose(closeInfo);
      });
      const c = {
        connection, inbox, pongs, closed,
        get closeInfo() { return closeInfo; },
        get connected() { return connection.connected; },
        send(v) { connection.sendUTF(typeof v === 'string' ? v : JSON.stringify(v)); },
        next(o) { return inbox.next(o); },
        waitClose(ms = 5000) { return within(closed, ms, `${label} to close`); },
        // A ping is answered after everything the server queued before it: once its pong is
        // here, anything the server sent earlier is in the inbox.
        async fence(ms = 5000) {
          const tag = unique('fence');
          connection.ping(Buffer.from(tag));
          for (;;) if ((await pongs.next({ timeout: ms, what: 'the fence pong' })) === tag) return;
        },
        async ask(req, o = {}) {
          c.send(req);
          return inbox.next({ what: `the answer to ${(typeof req === 'string' ? req : JSON.stringify(req)).slice(0, 60)}`, ...o });
        },
        async shut() {
          if (!connection.connected) return;
          connection.close();
          try { await within(closed, 2000, 'close'); } catch { connection.drop(); }
        },
      };
      resolve(c);
    });
    client.connect(url, null, null, hdrs);
  });
}

const SHUT = new Set();
async function open(inst, o) { const c = await modOpen(inst, o); SHUT.add(c); return c; }
async function shutAll() { await Promise.all([...SHUT].map((c) => c.shut())); SHUT.clear(); }

// One HTTP request on its own connection; resolves {status, headers, body, json}.
function request(inst, { method = 'GET', path: p = '/', headers = {}, body } = {}) {
  return httpRequest(inst, { method, path: p, headers, body, parse: parseMsg });
}
const post = (inst, body, { key = KEY, query = '', headers = {} } = {}) =>
  request(inst, { method: 'POST', path: `/text/moderation${query}`, body, headers: { ...(key === null ? {} : { 'x-chatsight-api-auth': key }), ...headers } });

function postText(body, { key = KEY, close = false } = {}) {
  const b = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return Buffer.concat([Buffer.from(`POST /text/moderation HTTP/1.1\r\nHost: 127.0.0.1\r\nx-chatsight-api-auth: ${key}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${b.length}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`), b]);
}

// A raw TCP connection that parses the HTTP/1.1 responses it receives, in order.
function rawHttp(inst) {
  const sock = net.connect(inst.port, '127.0.0.1');
  const responses = new Inbox('raw http');
  let buf = Buffer.alloc(0);
  let ended = null;
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const h = buf.indexOf('\r\n\r\n');
      if (h < 0) return;
      const head = buf.subarray(0, h).toString('latin1');
      const m = /^content-length:\s*(\d+)/im.exec(head);
      const len = m ? Number(m[1]) : 0;
      if (buf.length < h + 4 + len) return;
      const body = buf.subarray(h + 4, h + 4 + len).toString('utf8');
      buf = buf.subarray(h + 4 + len);
      const lines = head.split('\r\n');
      const headers = {};
      for (const l of lines.slice(1)) { const i = l.indexOf(':'); headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim(); }
      responses.push({ status: Number(lines[0].split(' ')[1]), headers, body, json: body ? parseMsg(body) : null });
    }
  });
  const closed = new Promise((resolve) => {
    sock.on('error', (e) => { ended = { error: e.code }; });
    sock.on('close', () => { ended = ended || { closed: true }; responses.end(ended); resolve(ended); });
  });
  const connected = new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  return { sock, responses, closed, connected, next: (o) => responses.next(o) };
}

// Every sample of /metrics as {'name{labels}': value}.
async function metrics(inst) {
  const r = await request(inst, { path: '/metrics' });
  assert.equal(r.status, 200, `/metrics -> ${r.status}`);
  return parseMetrics(r.body);
}
const M = {
  requests: 'wshub_moderation_requests_total',
  answers: (a) => `wshub_moderation_answers_total{action="${a}"}`,
  count: 'wshub_moderation_scoring_seconds_count',
  sum: 'wshub_moderation_scoring_seconds_sum',
  inf: 'wshub_moderation_scoring_seconds_bucket{le="+Inf"}',
};

// ------------------------------------------------------------------ answers

function assertResponse(r, reference) {
  assert.equal(r.api, API, JSON.stringify(r));
  assert.equal(r.success, true, `success should be true: ${JSON.stringify(r)}`);
  const x = r.response;
  for (const k of ['baseline', 'raceInvocation', 'politicalLanguage']) assert.equal(typeof x.engine1[k], 'number', `engine1.${k}`);
  for (const k of ['raceInvocation', 'defensive', 'aggressive', 'vulgar']) assert.equal(typeof x.engine2[k], 'number', `engine2.${k}`);
  assert.ok('baseline' in x.engine2);
  assert.equal(typeof x.engine3.invoked, 'boolean');
  assert.ok(Array.isArray(x.suggestedAction) && x.suggestedAction.length === 2);
  assert.ok(['pass', 'flag', 'delete'].includes(x.suggestedAction[0]), `action ${x.suggestedAction[0]}`);
  assert.equal(typeof x.suggestedAction[1], 'number');
  assert.equal(typeof x.patches.curseWordOverride, 'boolean');
  assert.equal(typeof x.patches.sentimentScore, 'number');
  assert.ok(Array.isArray(x.insights.dialectPrediction));
  const m = x.metadata;
  assert.equal(typeof m.computeTime, 'number');
  assert.match(m.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(typeof m.warningIssued, 'boolean');
  assert.equal(typeof m.latencyAlert, 'boolean');
  assert.equal(m.self_reference, reference, `self_reference of ${JSON.stringify(r).slice(0, 300)}`);
  assert.ok(x.operator && typeof x.operator === 'object');
  assert.equal(typeof r.TOS, 'string');
  assert.equal(typeof r.version, 'string');
}

function assertError(r, reference, what = '') {
  assert.equal(r.api, API, `${what}: ${JSON.stringify(r)}`);
  assert.equal(r.success, false, `${what}: expected an error answer: ${JSON.stringify(r)}`);
  assert.equal(typeof r.error.message, 'string', what);
  assert.ok(r.error.message.length > 0, what);
  assert.equal(r.response.metadata.self_reference, reference, `${what}: ${JSON.stringify(r)}`);
}

const scores = (r) => Object.fromEntries(SCORE_KEYS.map((k) => [k, r.response[k]]));
const action = (r) => r.response.suggestedAction[0];
// The answer's exact bytes without its per-answer metadata (uuid, computeTime, reference):
// the same sample must give byte-identical text.
function scoreBytes(r) {
  assert.equal(typeof r.raw, 'string');
  const m = /,"metadata":\{[^{}]*\}/.exec(r.raw);
  assert.ok(m, `no metadata object in ${r.raw.slice(0, 200)}`);
  return r.raw.slice(0, m.index) + r.raw.slice(m.index + m[0].length);
}

// Runs the seed client to completion: resolves {code, lines, stdout, stderr}.
function runSeedClient(args, { env = {}, timeout = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SEED_CLIENT, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`seed client did not exit within ${timeout} ms:\n${stdout}\n${stderr}`)); }, timeout);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, lines: stdout.split('\n').filter(Boolean).map((l) => l.split('\t')) });
    });
  });
}

// ================================================================== the main server

describe('a server with moderation.keys (2 workers)', () => {
  let srv;
  before(async () => { srv = await startServer({ WSHUB_LOG_LEVEL: 'debug' }); });
  after(async () => { await shutAll(); if (srv) await srv.teardown(); });

  test('the seed document\'s client moderates comments and prints one line per answer with its reference', T, async () => {
    const comments = [
      ['comment-1', 'hello world', 'pass'],
      ['comment-2', 'I will kill you', 'delete'],
      ['comment-3', 'you are a fucking idiot', 'flag'],
      ['comment-4', 'Scunthorpe United won 2-1 on Saturday', 'pass'],
      ['comment-5', 'f.u.c.k you', 'flag'],
    ];
    const url = `${srv.wsUrl}/text/moderation`;
    // URL and key on the command line.
    const r = await runSeedClient([url, KEY, ...comments.map(([ref, text]) => `${ref}=${text}`)]);
    assert.equal(r.code, 0, `seed client exit ${r.code}:\n${r.stdout}\n${r.stderr}`);
    assert.deepEqual(r.lines[0], ['OPEN']);
    const answers = r.lines.filter((l) => l[0] === 'ANSWER');
    assert.equal(answers.length, comments.length, r.stdout);
    assert.deepEqual(answers.map((l) => l[1]).sort(), comments.map((c) => c[0]).sort(), 'one line per comment, each with its own reference');
    for (const [ref, , want] of comments) assert.deepEqual(answers.find((l) => l[1] === ref), ['ANSWER', ref, want], r.stdout);
    assert.deepEqual(r.lines.at(-1).slice(0, 2), ['CLOSE', '1000'], r.stdout);
    // URL and key from the environment, the second configured key.
    const e = await runSeedClient([], { env: { MODERATION_URL: url, MODERATION_KEY: KEYS[1] } });
    assert.equal(e.code, 0, `${e.stdout}\n${e.stderr}`);
    assert.deepEqual(e.lines.map((l) => l[0]), ['OPEN', 'CLOSE']);
  });

  test('the seed client with a wrong key: connects (101), then the connection dies with 1006 and no answer', T, async () => {
    const r = await runSeedClient([`${srv.wsUrl}/text/moderation`, 'not-a-key', 'c-1=hello world']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.deepEqual(r.lines[0], ['OPEN'], 'the upgrade completes');
    assert.equal(r.lines.filter((l) => l[0] === 'ANSWER').length, 0, r.stdout);
    const close = r.lines.find((l) => l[0] === 'CLOSE');
    assert.ok(close, r.stdout);
    assert.equal(close[1], '1006', r.stdout);
  });

  // -------------------------------------------------------------- auth

  async function expectAbort(o, what) {
    const c = await modOpen(srv, o); // `connect` fired: the 101 came
    const info = await c.waitClose(5000);
    assert.equal(info.code, 1006, `${what}: expected an abortive close (1006), got ${JSON.stringify(info)}`);
    assert.deepEqual(c.inbox.drain(), [], `${what}: nothing may be sent to an unauthenticated client`);
  }

  test('wrong, missing, empty, case-changed and prefix keys: 101, then abort (1006, nothing received)', T, async () => {
    await expectAbort({ key: 'wrong-key' }, 'wrong key');
    await expectAbort({ key: null }, 'missing key');
    await expectAbort({ key: '' }, 'empty key');
    await expectAbort({ key: KEY.toUpperCase() }, 'upper-cased key');
    await expectAbort({ key: KEY.slice(0, -1) }, 'a prefix of a key');
    await expectAbort({ key: `${KEY}x` }, 'a key plus one character');
    await expectAbort({ key: KEYS.join(',') }, 'both keys in one header value');
  });

  // A reset and a FIN look alike to Node when both are already queued when it reads (the
  // reset's error can be consumed before the read that finds the end). The client is
  // half-open, so on `end` it writes a byte: after a FIN from a closed peer that write still
  // succeeds locally; after a reset the socket is dead and the write fails at once.
  function rawUpgrade(headersText) {
    return new Promise((resolve) => {
      const sock = net.connect({ port: srv.port, host: '127.0.0.1', allowHalfOpen: true });
      let data = Buffer.alloc(0);
      let reset = null;
      let sawEnd = false;
      const done = () => resolve({ data, reset, sawEnd });
      sock.on('data', (d) => { data = Buffer.concat([data, d]); });
      sock.on('error', (e) => { reset = reset || e.code; });
      sock.on('end', () => {
        sawEnd = true;
        sock.write('x', (e) => { if (e) reset = reset || e.code; sock.destroy(); });
      });
      sock.on('close', done);
      sock.on('connect', () => sock.write('GET /text/moderation HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n${headersText}\r\n`));
    });
  }

  test('the documented failure on the wire: 101 Switching Protocols, then a TCP reset, no close frame', T, async () => {
    for (const key of ['wrong-key', null]) {
      for (let round = 0; round < 3; round++) {
        const { data, reset } = await within(rawUpgrade(key === null ? '' : `x-chatsight-api-auth: ${key}\r\n`), 5000, 'the server to drop the connection');
        const text = data.toString('latin1');
        assert.match(text, /^HTTP\/1\.1 101 /, `key ${key}: the upgrade completes first: ${JSON.stringify(text)}`);
        const end = text.indexOf('\r\n\r\n');
        assert.ok(end > 0, 'a complete 101 response');
        assert.equal(data.length, end + 4, `key ${key}: no byte after the 101 (no close frame): ${JSON.stringify(text.slice(end + 4))}`);
        assert.ok(reset === 'ECONNRESET' || reset === 'EPIPE', `key ${key}: expected a TCP reset (no FIN), got ${reset || 'a clean FIN'}`);
      }
    }
    // The control: a valid key is not reset.
    const c = await open(srv);
    assertResponse(await c.ask({ sample: 'control', reference: 'ctl' }), 'ctl');
  });

  test('?api_key= is off by default: a valid key in the query alone is refused (WS abort, POST 401)', T, async () => {
    await expectAbort({ key: null, query: `?api_key=${KEY}` }, 'query key without the knob');
    const r = await post(srv, { sample: 'hello', reference: 'q-1' }, { key: null, query: `?api_key=${KEY}` });
    assert.equal(r.status, 401, r.body);
    assertError(r.json, null, 'POST ?api_key= without the knob');
  });

  test('every configured key works, and the refused connections left the server serving', T, async () => {
    for (const key of KEYS) {
      const c = await open(srv, { key });
      assertResponse(await c.ask({ sample: 'key check', reference: `k-${key}` }), `k-${key}`);
      await c.shut();
    }
  });

  // -------------------------------------------------------------- errors and limits

  test('error answers carry the reference and the connection stays open after every one', T, async () => {
    const c = await open(srv);
    const cases = [
      ['this is not json', null, 'non-JSON'],
      ['{"sample": "unterminated', null, 'truncated JSON'],
      ['[1, 2, 3]', null, 'a JSON array'],
      ['"just a string"', null, 'a JSON string'],
      ['null', null, 'JSON null'],
      ['', null, 'an empty message'],
      [{ reference: 'e-missing' }, 'e-missing', 'missing sample'],
      [{ sample: null, reference: 'e-null' }, 'e-null', 'null sample'],
      [{ sample: 7, reference: 'e-num' }, 'e-num', 'numeric sample'],
      [{ sample: ['a'], reference: 'e-arr' }, 'e-arr', 'array sample'],
      [{ sample: true, reference: 'e-bool' }, 'e-bool', 'boolean sample'],
      [{ sample: 'x'.repeat(10001), reference: 'e-long' }, 'e-long', 'a sample over 10 000'],
    ];
    for (const [req, ref, what] of cases) {
      assertError(await c.ask(req), ref, what);
      assertResponse(await c.ask({ sample: 'still here', reference: `after ${what}` }), `after ${what}`);
    }
    await c.fence();
    assert.deepEqual(c.inbox.drain(), [], 'exactly one answer per request');
    assert.ok(c.connected, 'the connection is still open');
  });

  test('an empty sample and unknown members are a valid request', T, async () => {
    const c = await open(srv);
    const r = await c.ask({ sample: '', reference: 'empty' });
    assertResponse(r, 'empty');
    assert.equal(action(r), 'pass');
    assertResponse(await c.ask({ sample: 'hi', reference: 'extra', user: 'u1', lang: 'en' }), 'extra');
    // The seed's own example request carries "reference": "".
    assertResponse(await c.ask({ sample: 'hello world', reference: '' }), '');
    // References are opaque: quotes, backslashes, braces and non-ASCII come back as sent.
    const odd = 'user "x" \\ {id} – 名前 😀';
    assertResponse(await c.ask({ sample: 'odd reference', reference: odd }), odd);
  });

  test('binary frames get an error answer (self_reference null), and the connection stays open', T, async () => {
    const c = await open(srv);
    c.connection.sendBytes(Buffer.from(JSON.stringify({ sample: 'hello', reference: 'bin-1' })));
    const r = await c.next({ what: 'the answer to a binary frame' });
    assertError(r, null, 'binary frame');
    c.connection.sendBytes(Buffer.from([0, 1, 2, 255]));
    assertError(await c.next({ what: 'the answer to a second binary frame' }), null, 'binary garbage');
    assertResponse(await c.ask({ sample: 'after binary', reference: 'bin-ok' }), 'bin-ok');
    await c.fence();
    assert.deepEqual(c.inbox.drain(), []);
    assert.ok(c.connected);
  });

  test('sample limit counts Unicode code points: 10 000 "é" or emoji pass, 10 001 fail', T, async () => {
    const c = await open(srv);
    assertResponse(await c.ask({ sample: 'é'.repeat(10000), reference: 'e-10000' }), 'e-10000');
    assertError(await c.ask({ sample: 'é'.repeat(10001), reference: 'e-10001' }), 'e-10001', '10 001 é');
    // An astral character is one code point, two UTF-16 units, four UTF-8 bytes.
    assertResponse(await c.ask({ sample: '😀'.repeat(10000), reference: 'emoji-10000' }), 'emoji-10000');
    assertError(await c.ask({ sample: '😀'.repeat(10001), reference: 'emoji-10001' }), 'emoji-10001', '10 001 emoji');
    // Escaped in the JSON text: still code points of the decoded string.
    c.send(`{"sample":"${'\\u00e9'.repeat(10000)}","reference":"esc-10000"}`);
    assertResponse(await c.next(), 'esc-10000');
    assertResponse(await c.ask({ sample: 'ok', reference: 'len-ok' }), 'len-ok');
  });

  test('a text frame that is not UTF-8 closes with 1007 (§0 rule 4)', T, async () => {
    const ws = new WebSocket(`${srv.wsUrl}/text/moderation`, { headers: { 'x-chatsight-api-auth': KEY } });
    await within(new Promise((r, j) => { ws.once('open', r); ws.once('error', j); }), 5000, 'ws open');
    const closed = new Promise((r) => ws.once('close', (code) => r(code)));
    ws.on('error', () => {});
    ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    assert.equal(await within(closed, 5000, 'the 1007 close'), 1007);
  });

  test('a message over limits.max_message_bytes (1 MiB) closes with 1009 (§0 rule 4)', T, async () => {
    const ws = new WebSocket(`${srv.wsUrl}/text/moderation`, { headers: { 'x-chatsight-api-auth': KEY } });
    await within(new Promise((r, j) => { ws.once('open', r); ws.once('error', j); }), 5000, 'ws open');
    const closed = new Promise((r) => ws.once('close', (code) => r(code)));
    ws.on('error', () => {});
    ws.send(JSON.stringify({ sample: 'a'.repeat(1100000), reference: 'huge' }));
    assert.equal(await within(closed, 5000, 'the 1009 close'), 1009);
  });

  test('a non-string reference ("Timestamp ... Anything", seed document) is echoed as sent', T, async () => {
    // PROTOCOLS.md §A: self_reference = the request's reference, null if none. A number is a
    // reference (the seed suggests timestamps): answering null leaves the client unable to
    // correlate the answer.
    const c = await open(srv);
    const ts = 1700000000123;
    const r = await c.ask({ sample: 'numeric reference', reference: ts });
    assert.equal(r.success, true, JSON.stringify(r));
    assert.equal(r.response.metadata.self_reference, ts, `self_reference for reference ${ts}: ${JSON.stringify(r.response.metadata)}`);
    const e = await c.ask({ reference: ts });
    assert.equal(e.success, false);
    assert.equal(e.response.metadata.self_reference, ts, `error answer for reference ${ts}: ${JSON.stringify(e)}`);
  });

  // -------------------------------------------------------------- classifier through the API

  test('the labelled set through the API: abuse (plain and obfuscated) flagged or deleted, clean text passes', { timeout: 60000 }, async () => {
    const rows = fs.readFileSync(LABELLED, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const c = await open(srv);
    const got = new Map();
    for (let i = 0; i < rows.length; i += 40) { // below max_in_flight (64)
      const batch = rows.slice(i, i + 40);
      batch.forEach((row, j) => c.send({ sample: row.text, reference: `lab-${i + j}` }));
      for (let j = 0; j < batch.length; j++) {
        const r = await c.next({ what: `labelled answer ${i + j}` });
        assertResponse(r, r.response.metadata.self_reference);
        got.set(r.response.metadata.self_reference, r);
      }
    }
    const tally = { plain: [0, 0], obfuscated: [0, 0], clean: [0, 0] };
    const wrong = [];
    rows.forEach((row, i) => {
      const a = action(got.get(`lab-${i}`));
      const cls = row.label === 'clean' ? 'clean' : row.variant;
      const ok = row.label === 'clean' ? a === 'pass' : a !== 'pass';
      tally[cls][0] += ok;
      tally[cls][1]++;
      if (!ok) wrong.push(`${row.label}/${row.variant}: ${a} ${JSON.stringify(row.text)}`);
    });
    const rate = ([a, b]) => a / b;
    assert.ok(rate(tally.plain) >= 0.95, `plain abuse recall ${tally.plain}: ${wrong.join('\n')}`);
    assert.ok(rate(tally.obfuscated) >= 0.9, `obfuscated abuse recall ${tally.obfuscated}: ${wrong.join('\n')}`);
    assert.ok(1 - rate(tally.clean) <= 0.02, `false positives on clean text ${tally.clean}: ${wrong.join('\n')}`);
  });

  test('named cases: abuse plain and obfuscated is flagged/deleted; Scunthorpe, assistant, classic, therapist pass', T, async () => {
    const c = await open(srv);
    const cases = {
      'you are a fucking idiot': ['flag', 'delete'],
      'I will kill you': ['delete'],
      'go kill yourself': ['delete'],
      'f.u.c.k you': ['flag', 'delete'],
      'you are a f u c k i n g clown': ['flag', 'delete'],
      'fuuuuuck this': ['flag', 'delete'],
      'f*ck off': ['flag', 'delete'],
      'you stupid b1tch': ['flag', 'delete'],
      'piece of sh!t': ['flag', 'delete'],
      'fu\u0441k you': ['flag', 'delete'], // a Cyrillic с
      'FUCK YOU': ['flag', 'delete'],
      'hello world': ['pass'],
      'Scunthorpe United won 2-1 on Saturday': ['pass'],
      'We drove through Scunthorpe on the way north': ['pass'],
      'my assistant will send you the invoice': ['pass'],
      'I love classic rock from the seventies': ['pass'],
      'Titanic is a classic film': ['pass'],
      'my therapist recommended journaling': ['pass'],
      'Essex and Sussex and Middlesex': ['pass'],
    };
    for (const [sample, want] of Object.entries(cases)) {
      const r = await c.ask({ sample, reference: sample });
      assertResponse(r, sample);
      assert.ok(want.includes(action(r)), `${JSON.stringify(sample)}: ${action(r)} (${r.response.suggestedAction[1]}), expected ${want.join('|')}`);
      if (want[0] === 'pass') assert.equal(r.response.patches.curseWordOverride, false, `${sample}: curseWordOverride`);
    }
  });

  test('determinism: the same sample gives byte-identical scores across connections, both workers and HTTP', T, async () => {
    const samples = ['You are an absolute idiot, visit www.example.com NOW!!!', 'hello world', 'f.u.c.k you',
      'buy cheap pills at http://x.example.com call 555-123-4567', 'I love classic rock from the seventies'];
    const log = () => srv.log();
    const workerOf = async (c) => {
      const port = c.connection.socket.localPort;
      const m = await waitFor(() => new RegExp(`conn_open conn=(\\d+) peer=127\\.0\\.0\\.1:${port} `).exec(log()), 3000, `the conn_open log line of port ${port}`);
      return Number(m[1]) % 2; // conn ids are seq * workers + worker index
    };
    const byWorker = new Map();
    const reference = new Map();
    for (let i = 0; i < 24 && byWorker.size < 2; i++) {
      const cs = await Promise.all([open(srv), open(srv), open(srv), open(srv)]);
      for (const c of cs) {
        const w = await workerOf(c);
        if (!byWorker.has(w)) byWorker.set(w, []);
        byWorker.get(w).push(c);
      }
    }
    assert.equal(byWorker.size, 2, 'connections on both workers');
    const conns = [...byWorker.values()].flatMap((list) => list.slice(0, 2));
    for (const sample of samples) {
      for (const c of conns) {
        const r = await c.ask({ sample, reference: unique('det') });
        const bytes = scoreBytes(r);
        if (!reference.has(sample)) reference.set(sample, bytes);
        else assert.equal(bytes, reference.get(sample), `${JSON.stringify(sample)}: scores differ between connections/workers`);
      }
      const h = await post(srv, { sample, reference: unique('det-http') });
      assert.equal(h.status, 200);
      assert.equal(scoreBytes(h.json), reference.get(sample), `${JSON.stringify(sample)}: HTTP and WebSocket scores differ`);
    }
    for (const list of byWorker.values()) for (const c of list) await c.shut();
  });

  // -------------------------------------------------------------- HTTP

  test('POST: 200, application/json, the same body shape and byte-identical scores as the WebSocket answer', T, async () => {
    const c = await open(srv);
    for (const [i, sample] of ['hello world', 'you are a fucking idiot', 'I will kill you'].entries()) {
      const r = await post(srv, { sample, reference: `http-${i}` }, { key: KEYS[i % 2] });
      assert.equal(r.status, 200, r.body);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      assertResponse(r.json, `http-${i}`);
      const w = await c.ask({ sample, reference: `ws-${i}` });
      assert.deepEqual(Object.keys(r.json), Object.keys(w), 'same top-level members in the same order');
      assert.deepEqual(Object.keys(r.json.response), Object.keys(w.response));
      assert.equal(scoreBytes(r.json), scoreBytes(w));
    }
    const n = await post(srv, { sample: 'no reference' });
    assert.equal(n.status, 200);
    assertResponse(n.json, null);
  });

  test('POST: 400 with the error form for bad bodies, reference echoed when there is one', T, async () => {
    const bad = [
      ['this is not json', null, 'non-JSON'],
      ['', null, 'an empty body'],
      ['[]', null, 'a JSON array'],
      [{ reference: 'p-missing' }, 'p-missing', 'missing sample'],
      [{ sample: 12, reference: 'p-num' }, 'p-num', 'numeric sample'],
      [{ sample: 'x'.repeat(10001), reference: 'p-long' }, 'p-long', 'a sample over 10 000'],
      [{ sample: 'é'.repeat(10001), reference: 'p-long-e' }, 'p-long-e', '10 001 é'],
    ];
    for (const [body, ref, what] of bad) {
      const r = await post(srv, body);
      assert.equal(r.status, 400, `${what}: ${r.status} ${r.body}`);
      assert.match(String(r.headers['content-type']), /json/, what);
      assertError(r.json, ref, what);
    }
    const ok = await post(srv, { sample: 'é'.repeat(10000), reference: 'p-10000' });
    assert.equal(ok.status, 200, ok.body.slice(0, 200));
    assertResponse(ok.json, 'p-10000');
  });

  test('POST: 401 with the error form for a missing, wrong or empty key', T, async () => {
    for (const [key, what] of [[null, 'missing'], ['wrong-key', 'wrong'], ['', 'empty'], [KEY.toUpperCase(), 'upper-cased']]) {
      const r = await post(srv, { sample: 'hello', reference: 'auth' }, { key });
      assert.equal(r.status, 401, `${what} key: ${r.status} ${r.body}`);
      assert.equal(r.json.api, API, r.body);
      assert.equal(r.json.success, false, r.body);
      assert.equal(typeof r.json.error.message, 'string');
      assert.ok('self_reference' in r.json.response.metadata, r.body);
    }
  });

  test('POST keep-alive: a second request sent after the first answer, on the same socket, is answered', T, async () => {
    const c = rawHttp(srv);
    await within(c.connected, 5000, 'connect');
    try {
      for (let i = 0; i < 3; i++) {
        c.sock.write(postText({ sample: `keep-alive ${i}`, reference: `ka-${i}` }));
        const r = await c.next({ timeout: 3000, what: `the answer to keep-alive request ${i}` });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.headers.connection, 'keep-alive');
        assertResponse(r.json, `ka-${i}`);
      }
      // And a plain request after them.
      c.sock.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      const h = await c.next({ timeout: 3000, what: 'the healthz answer after the keep-alive POSTs' });
      assert.equal(h.status, 200);
    } finally { c.sock.destroy(); }
  });

  test('POST keep-alive through Node\'s http.Agent({keepAlive}): sequential requests reuse the socket', T, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 3; i++) {
        const r = await within(new Promise((resolve, reject) => {
          const body = JSON.stringify({ sample: `agent ${i}`, reference: `agent-${i}` });
          const req = http.request({ host: '127.0.0.1', port: srv.port, method: 'POST', path: '/text/moderation', agent,
            headers: { 'x-chatsight-api-auth': KEY, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
            let b = '';
            res.on('data', (d) => { b += d; });
            res.on('end', () => resolve({ status: res.statusCode, json: parseMsg(b), reused: req.reusedSocket }));
          });
          req.on('error', reject);
          req.end(body);
        }), 3000, `keep-alive agent request ${i}`);
        assert.equal(r.status, 200);
        assertResponse(r.json, `agent-${i}`);
        if (i > 0) assert.ok(r.reused, 'the agent reused its keep-alive socket');
      }
    } finally { agent.destroy(); }
  });

  test('POST with Connection: close: answered, then the server closes', T, async () => {
    const c = rawHttp(srv);
    await within(c.connected, 5000, 'connect');
    c.sock.write(postText({ sample: 'closing', reference: 'cl-1' }, { close: true }));
    const r = await c.next({ what: 'the answer' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.connection, 'close');
    assertResponse(r.json, 'cl-1');
    await within(c.closed, 5000, 'the server to close');
  });

  // -------------------------------------------------------------- metrics

  test('metrics: requests_total, answers_total{action} and the scoring_seconds histogram move', T, async () => {
    const m0 = await metrics(srv);
    for (const k of [M.requests, M.answers('pass'), M.answers('flag'), M.answers('delete'), M.answers('error'), M.count, M.sum, M.inf]) {
      assert.equal(typeof m0[k], 'number', `${k} is exported`);
    }
    const c = await open(srv);
    assert.equal(action(await c.ask({ sample: 'hello world', reference: 'm1' })), 'pass');
    assert.equal(action(await c.ask({ sample: 'a perfectly calm sentence', reference: 'm2' })), 'pass');
    assert.equal(action(await c.ask({ sample: 'you are a fucking idiot', reference: 'm3' })), 'flag');
    assert.equal(action(await c.ask({ sample: 'I will kill you', reference: 'm4' })), 'delete');
    assertError(await c.ask('not json'), null);
    c.connection.sendBytes(Buffer.from('x'));
    assertError(await c.next(), null);
    const h = await post(srv, { sample: 'thanks for the help', reference: 'm5' });
    assert.equal(action(h.json), 'pass');
    assert.equal((await post(srv, 'nope')).status, 400);
    const m1 = await metrics(srv);
    const d = (k) => m1[k] - m0[k];
    assert.equal(d(M.requests), 5, 'five requests were queued for scoring');
    assert.equal(d(M.answers('pass')), 3);
    assert.equal(d(M.answers('flag')), 1);
    assert.equal(d(M.answers('delete')), 1);
    assert.equal(d(M.answers('error')), 3, 'two WebSocket errors and one HTTP 400');
    assert.equal(d(M.count), 5);
    assert.equal(d(M.inf), 5);
    assert.ok(d(M.sum) > 0, 'the histogram sum grows');
    const buckets = Object.keys(m1).filter((k) => k.startsWith('wshub_moderation_scoring_seconds_bucket{'));
    assert.ok(buckets.length >= 3);
    let prev = -1;
    for (const b of buckets) { assert.ok(m1[b] >= prev, `buckets are cumulative: ${b}`); prev = m1[b]; }
  });
});

// ================================================================== answers out of order

describe('moderation.delay_ms 300: answers overtake one another', () => {
  let srv;
  let plain;
  before(async () => {
    [srv, plain] = await Promise.all([startServer({ WSHUB_MODERATION_DELAY_MS: '300' }), startServer()]);
  });
  after(async () => {
    await shutAll();
    const errors = [];
    for (const s of [srv, plain]) if (s) await s.teardown().catch((e) => errors.push(e));
    if (errors.length) throw errors[0];
  });

  test('50 concurrent requests on one connection: out of order, each with its own scores, none lost, none duplicated', T, async () => {
    const base = ['hello there, nice to meet you', 'what a stupid idea', 'contact me at someone@example.com',
      'call +1 (555) 123-4567 today', 'THIS IS REALLY LOUD SHOUTING', 'buy buy buy buy buy buy buy now',
      'see https://example.org/offer', 'you are a f u c k i n g clown', 'sh1t happens', 'I will kill you'];
    const samples = Array.from({ length: 50 }, (_, i) => `${base[i % base.length]}${' .'.repeat(Math.floor(i / base.length))}`);
    // Each sample sent alone (one request at a time, no delay): its reference scores.
    const ref = await open(plain);
    const expected = [];
    for (let i = 0; i < samples.length; i++) expected.push(scoreBytes(await ref.ask({ sample: samples[i], reference: `alone-${i}` })));
    const c = await open(srv);
    const t0 = Date.now();
    for (let i = 0; i < samples.length; i++) c.send({ sample: samples[i], reference: `conc-${i}` });
    const seen = new Map();
    const order = [];
    for (let i = 0; i < samples.length; i++) {
      const r = await c.next({ timeout: 10000, what: `answer ${i + 1} of 50` });
      assertResponse(r, r.response && r.response.metadata && r.response.metadata.self_reference);
      const reference = r.response.metadata.self_reference;
      assert.match(reference, /^conc-\d+$/);
      assert.ok(!seen.has(reference), `duplicate answer for ${reference}`);
      seen.set(reference, r);
      order.push(Number(reference.slice(5)));
    }
    const elapsed = Date.now() - t0;
    // A fence: anything else the server had for us is here by the pong.
    await c.fence();
    assert.deepEqual(c.inbox.drain(), [], 'no answer beyond the 50');
    assert.equal(seen.size, 50);
    assert.notDeepEqual(order, [...order].sort((a, b) => a - b), `answers came in send order: ${order}`);
    for (let i = 0; i < samples.length; i++) {
      assert.equal(scoreBytes(seen.get(`conc-${i}`)), expected[i], `conc-${i} does not carry the scores of ${JSON.stringify(samples[i])}`);
    }
    assert.ok(elapsed < 5000, `the delays run concurrently (${elapsed} ms for 50 answers)`);
  });

  test('the seed client correlates out-of-order answers by self_reference', T, async () => {
    const comments = Array.from({ length: 12 }, (_, i) => [`c-${i}`, i % 3 === 0 ? 'I will kill you' : i % 3 === 1 ? 'hello world' : 'you are a fucking idiot']);
    const want = { 'I will kill you': 'delete', 'hello world': 'pass', 'you are a fucking idiot': 'flag' };
    const r = await runSeedClient([`${srv.wsUrl}/text/moderation`, KEY, ...comments.map(([ref, t]) => `${ref}=${t}`)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const answers = r.lines.filter((l) => l[0] === 'ANSWER');
    assert.equal(answers.length, comments.length);
    for (const [ref, text] of comments) assert.deepEqual(answers.find((l) => l[1] === ref), ['ANSWER', ref, want[text]]);
  });

  test('POST pipelining: POSTs (good and bad) and a GET written in one write are answered in request order', T, async () => {
    const c = rawHttp(srv);
    await within(c.connected, 5000, 'connect');
    try {
      const reqs = [
        [postText({ sample: 'hello world', reference: 'pipe-0' }), 200, 'pipe-0', 'pass'],
        [postText({ sample: 'I will kill you', reference: 'pipe-1' }), 200, 'pipe-1', 'delete'],
        [postText('not json'), 400, null],
        [postText({ sample: 'hello again', reference: 'pipe-3' }), 200, 'pipe-3', 'pass'],
        [postText({ sample: 'x'.repeat(10001), reference: 'pipe-4' }), 400, 'pipe-4'],
        [postText({ sample: 'you are a fucking idiot', reference: 'pipe-5' }), 200, 'pipe-5', 'flag'],
        [Buffer.from('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'), 200, 'healthz'],
        [postText({ sample: 'last one', reference: 'pipe-7' }, { key: 'wrong-key' }), 401, null],
        [postText({ sample: 'really the last one', reference: 'pipe-8' }), 200, 'pipe-8', 'pass'],
      ];
      c.sock.write(Buffer.concat(reqs.map((r) => r[0])));
      for (const [i, [, status, ref, act]] of reqs.entries()) {
        const r = await c.next({ timeout: 5000, what: `pipelined answer ${i}` });
        assert.equal(r.status, status, `answer ${i}: ${r.status} ${r.body.slice(0, 200)}`);
        if (ref === 'healthz') { assert.deepEqual(r.json, { status: 'ok' }, `answer ${i} is the healthz`); continue; }
        if (status === 200) { assertResponse(r.json, ref); assert.equal(action(r.json), act); } else assertError(r.json, ref, `answer ${i}`);
      }
    } finally { c.sock.destroy(); }
  });

  test('a delayed POST followed by GET /healthz on the same socket: the healthz answer comes second', T, async () => {
    const c = rawHttp(srv);
    await within(c.connected, 5000, 'connect');
    try {
      c.sock.write(Buffer.concat([postText({ sample: 'hello world', reference: 'before-healthz' }),
        Buffer.from('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')]));
      const first = await c.next({ timeout: 5000, what: 'the first answer' });
      assert.equal(first.status, 200);
      assert.ok(first.json && first.json.api === API, `the moderation answer comes first, got ${first.body}`);
      assertResponse(first.json, 'before-healthz');
      const second = await c.next({ timeout: 5000, what: 'the healthz answer' });
      assert.equal(second.status, 200);
      assert.deepEqual(second.json, { status: 'ok' });
    } finally { c.sock.destroy(); }
  });

  test('clients that go away with requests in flight: no crash, other clients unaffected', T, async () => {
    const m0 = await metrics(srv);
    const other = await open(srv, { label: 'bystander' });
    // A WebSocket client that drops its TCP connection with 30 requests in flight.
    const dropper = await modOpen(srv, { label: 'dropper' });
    for (let i = 0; i < 30; i++) dropper.send({ sample: `going away ${i}`, reference: `drop-${i}` });
    // A WebSocket client that closes politely with 20 in flight.
    const closer = await modOpen(srv, { label: 'closer' });
    for (let i = 0; i < 20; i++) closer.send({ sample: `closing ${i}`, reference: `close-${i}` });
    // HTTP clients that hang up while their POST is being answered (one pipelined pair too).
    const h1 = rawHttp(srv);
    const h2 = rawHttp(srv);
    await Promise.all([h1.connected, h2.connected]);
    h1.sock.write(postText({ sample: 'gone', reference: 'h-gone' }));
    h2.sock.write(Buffer.concat([postText({ sample: 'gone 1' }), postText({ sample: 'gone 2' })]));
    // Fences: the server has read every request above before it answers the pings.
    await Promise.all([dropper.fence(), closer.fence()]);
    dropper.connection.drop();
    closer.connection.close();
    h1.sock.destroy();
    h2.sock.destroy();
    // The bystander is served meanwhile, in full.
    for (let i = 0; i < 10; i++) other.send({ sample: i % 2 ? 'I will kill you' : 'hello', reference: `by-${i}` });
    const refs = new Set();
    for (let i = 0; i < 10; i++) refs.add((await other.next({ timeout: 5000, what: `bystander answer ${i}` })).response.metadata.self_reference);
    assert.equal(refs.size, 10);
    // Every orphaned job finishes (scored and, after its delay, delivered into nothing).
    await waitFor(async () => {
      const m = await metrics(srv);
      const answered = ['pass', 'flag', 'delete', 'error'].reduce((s, a) => s + m[M.answers(a)] - m0[M.answers(a)], 0);
      return m[M.requests] - m0[M.requests] >= 51 && m[M.count] - m0[M.count] === m[M.requests] - m0[M.requests] && answered >= 51;
    }, 5000, 'every orphaned request to be scored');
    // No event tells that an answer was dropped into a closed connection: wait out the delay
    // knob's bound (300 ms) once, so that those releases happen while the server runs.
    await sleep(400);
    assert.equal((await srv.get('/healthz')).status, 200);
    assertResponse(await other.ask({ sample: 'still served', reference: 'by-last' }), 'by-last');
    assert.ok(srv.alive(), 'the server is alive');
  });
});

// ================================================================== in-flight limit

describe('moderation.max_in_flight 5 with a delay', () => {
  let srv;
  before(async () => { srv = await startServer({ WSHUB_MODERATION_MAX_IN_FLIGHT: '5', WSHUB_MODERATION_DELAY_MS: '800' }); });
  after(async () => { await shutAll(); if (srv) await srv.teardown(); });

  test('the 6th concurrent request gets an error carrying its reference; the first 5 get answers', T, async () => {
    const c = await open(srv);
    // One write: the server reads all six frames before any answer can be delivered.
    c.connection.socket.cork();
    for (let i = 1; i <= 6; i++) c.send({ sample: `request ${i}`, reference: `if-${i}` });
    c.connection.socket.uncork();
    const got = new Map();
    for (let i = 0; i < 6; i++) {
      const r = await c.next({ timeout: 5000, what: `answer ${i + 1} of 6` });
      got.set(r.response.metadata.self_reference, r);
    }
    assert.deepEqual([...got.keys()].sort(), ['if-1', 'if-2', 'if-3', 'if-4', 'if-5', 'if-6']);
    assertError(got.get('if-6'), 'if-6', 'the 6th request');
    assert.match(got.get('if-6').error.message, /flight|too many/i);
    for (let i = 1; i <= 5; i++) assertResponse(got.get(`if-${i}`), `if-${i}`);
    await c.fence();
    assert.deepEqual(c.inbox.drain(), []);
    // The slots are free again: a new request is scored.
    assertResponse(await c.ask({ sample: 'after the limit', reference: 'if-7' }, { timeout: 5000 }), 'if-7');
    assert.ok(c.connected);
  });

  test('the limit is per connection: another connection is not affected, and over-limit bad requests still echo the reference', T, async () => {
    const a = await open(srv);
    const b = await open(srv);
    a.connection.socket.cork();
    for (let i = 0; i < 5; i++) a.send({ sample: `a ${i}`, reference: `a-${i}` });
    a.send({ reference: 'a-over' });
    a.connection.socket.uncork();
    assertResponse(await b.ask({ sample: 'b is free', reference: 'b-0' }, { timeout: 5000 }), 'b-0');
    const got = new Map();
    for (let i = 0; i < 6; i++) {
      const r = await a.next({ timeout: 5000, what: `a answer ${i}` });
      got.set(r.response.metadata.self_reference, r);
    }
    assertError(got.get('a-over'), 'a-over');
    for (let i = 0; i < 5; i++) assertResponse(got.get(`a-${i}`), `a-${i}`);
  });
});

// ================================================================== auth_failure http401

describe('moderation.auth_failure http401', () => {
  let srv;
  before(async () => { srv = await startServer({ WSHUB_MODERATION_AUTH_FAILURE: 'http401' }); });
  after(async () => { await shutAll(); if (srv) await srv.teardown(); });

  function upgrade(headers) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${srv.wsUrl}/text/moderation`, { headers, handshakeTimeout: 5000 });
      ws.once('open', () => { ws.terminate(); resolve({ status: 101 }); });
      ws.once('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => { ws.terminate(); resolve({ status: res.statusCode, headers: res.headers, body, json: parseMsg(body) }); });
      });
      ws.once('error', (e) => reject(e));
    });
  }

  test('a wrong or missing key: the upgrade is refused with 401 and a JSON error body', T, async () => {
    for (const headers of [{ 'x-chatsight-api-auth': 'wrong-key' }, {}]) {
      const r = await within(upgrade(headers), 6000, 'the refusal');
      assert.equal(r.status, 401, JSON.stringify(r));
      assert.match(String(r.headers['content-type']), /json/);
      assert.equal(r.json.api, API, r.body);
      assert.equal(r.json.success, false, r.body);
      assert.equal(typeof r.json.error.message, 'string');
      assert.equal(r.json.response.metadata.self_reference, null, r.body);
    }
  });

  test('the documented `websocket` client sees connectFailed (no connect), and a valid key still works', T, async () => {
    await assert.rejects(modOpen(srv, { key: 'wrong-key' }), /401/);
    const c = await open(srv);
    assertResponse(await c.ask({ sample: 'hello', reference: 'ok' }), 'ok');
  });
});

// ================================================================== query_key

describe('moderation.query_key true', () => {
  let srv;
  before(async () => { srv = await startServer({ WSHUB_MODERATION_QUERY_KEY: 'true' }); });
  after(async () => { await shutAll(); if (srv) await srv.teardown(); });

  test('?api_key= authenticates the upgrade and POST; a wrong query key is still refused', T, async () => {
    const c = await open(srv, { key: null, query: `?api_key=${encodeURIComponent(KEYS[1])}` });
    assertResponse(await c.ask({ sample: 'query key', reference: 'qk' }), 'qk');
    const p = await post(srv, { sample: 'hello', reference: 'qk-http' }, { key: null, query: `?api_key=${KEY}` });
    assert.equal(p.status, 200, p.body);
    assertResponse(p.json, 'qk-http');
    const bad = await modOpen(srv, { key: null, query: '?api_key=wrong-key' });
    assert.equal((await bad.waitClose(5000)).code, 1006);
    assert.deepEqual(bad.inbox.drain(), []);
    const pb = await post(srv, { sample: 'hello' }, { key: null, query: '?api_key=wrong-key' });
    assert.equal(pb.status, 401);
    // The header still works with the knob on.
    const h = await open(srv);
    assertResponse(await h.ask({ sample: 'header key', reference: 'hk' }), 'hk');
  });
});

// ================================================================== max_sample_chars

describe('moderation.max_sample_chars 20', () => {
  let srv;
  before(async () => { srv = await startServer({ WSHUB_MODERATION_MAX_SAMPLE_CHARS: '20' }); });
  after(async () => { await shutAll(); if (srv) await srv.teardown(); });

  test('the knob moves the limit (code points) on WebSocket and POST', T, async () => {
    const c = await open(srv);
    assertResponse(await c.ask({ sample: 'ü'.repeat(20), reference: 'ok-20' }), 'ok-20');
    assertError(await c.ask({ sample: 'ü'.repeat(21), reference: 'no-21' }), 'no-21');
    assert.equal((await post(srv, { sample: 'a'.repeat(20) })).status, 200);
    const r = await post(srv, { sample: 'a'.repeat(21), reference: 'no-21-http' });
    assert.equal(r.status, 400);
    assertError(r.json, 'no-21-http');
  });
});

// ================================================================== SIGHUP

describe('SIGHUP reloads moderation.keys from the config file', () => {
  let srv;
  let cfgFile;
  before(async () => {
    srv = await startServer({ WSHUB_MODERATION_KEYS: undefined }, { config: { moderation: { keys: [KEYS[0]] } } });
    cfgFile = path.join(srv.dir, 'wshub.json');
  });
  after(async () => { await shutAll(); if (srv) await srv.teardown(); });

  test('the new key works, the removed key is refused (abort), an open connection keeps working', T, async () => {
    const before = await open(srv, { key: KEYS[0] });
    assertResponse(await before.ask({ sample: 'old key', reference: 'old' }), 'old');
    const refused = await modOpen(srv, { key: KEYS[1] });
    assert.equal((await refused.waitClose(5000)).code, 1006, 'the second key is not configured yet');
    fs.writeFileSync(cfgFile, JSON.stringify({ moderation: { keys: [KEYS[1]] } }));
    const reloads = (srv.log().match(/reloaded /g) || []).length;
    srv.child.kill('SIGHUP');
    await waitFor(() => (srv.log().match(/reloaded /g) || []).length > reloads, 5000, 'the reload log line');
    const now = await open(srv, { key: KEYS[1] });
    assertResponse(await now.ask({ sample: 'new key', reference: 'new' }), 'new');
    const old = await modOpen(srv, { key: KEYS[0] });
    assert.equal((await old.waitClose(5000)).code, 1006, 'the removed key is refused');
    assert.equal((await post(srv, { sample: 'x' }, { key: KEYS[0] })).status, 401);
    assert.equal((await post(srv, { sample: 'x' }, { key: KEYS[1] })).status, 200);
    assertResponse(await before.ask({ sample: 'still open', reference: 'still' }), 'still');
  });
});

// ================================================================== SIGTERM

describe('SIGTERM', () => {
  // The test stopped the daemon itself: check what teardown() would (a still-running one is
  // torn down normally).
  async function finish(srv) {
    if (srv.alive()) return srv.teardown();
    const log = srv.log();
    const m = SANITIZER.exec(log);
    if (m) throw new Error(`sanitizer report in ${srv.logFile}:\n${log.slice(Math.max(0, m.index - 200), m.index + 3000)}`);
    return undefined;
  }

  test('with requests held back by the delay knob: clients see 1001, the daemon exits 0', T, async () => {
    const srv = await startServer({ WSHUB_MODERATION_DELAY_MS: '3000' });
    try {
      const m0 = await metrics(srv);
      const cs = await Promise.all([modOpen(srv), modOpen(srv)]);
      cs.forEach((c, k) => { for (let i = 0; i < 10; i++) c.send({ sample: `in flight ${k}.${i}`, reference: `t-${k}-${i}` }); });
      const h = rawHttp(srv);
      await h.connected;
      h.sock.write(postText({ sample: 'pending post', reference: 't-http' }));
      // Every request is scored and waiting for its delay.
      await waitFor(async () => (await metrics(srv))[M.count] - m0[M.count] >= 21, 5000, 'the 21 requests to be scored');
      const t0 = Date.now();
      srv.child.kill('SIGTERM');
      const info = await within(srv.exited, 10000, 'the daemon to exit');
      assert.deepEqual(info, { code: 0, signal: null }, srv.log().slice(-2000));
      for (const c of cs) {
        const ci = await c.waitClose(2000);
        assert.equal(ci.code, 1001, `close code ${JSON.stringify(ci)}`);
      }
      await within(h.closed, 2000, 'the pending POST connection to close');
      assert.ok(Date.now() - t0 < 8000, 'exits before the shutdown deadline plus slack');
    } finally {
      await finish(srv); // sanitizer reports (leaks of orphaned jobs) fail here
    }
  });

  test('with samples still being scored on the thread pool: exit 0, no sanitizer report', T, async () => {
    const srv = await startServer({ WSHUB_MODERATION_MAX_SAMPLE_CHARS: '1000000', WSHUB_MODERATION_DELAY_MS: '50' });
    try {
      // No links: scoring time grows faster than linearly with the number of links (see the report).
      const big = 'you are a fucking idiot and a moron '.repeat(25000).slice(0, 850000);
      const c = await modOpen(srv);
      const m0 = await metrics(srv);
      for (let i = 0; i < 8; i++) c.send({ sample: big, reference: `big-${i}` });
      c.send({ sample: 'small', reference: 'small' });
      // Every frame has been read and queued.
      await waitFor(async () => (await metrics(srv))[M.requests] - m0[M.requests] >= 9, 10000, 'the 9 requests to be queued');
      srv.child.kill('SIGTERM');
      // Each big sample takes ~0.2 s to score under ASan on a 4-thread pool: most are still
      // being scored (or waiting for a thread) now.
      assert.ok(c.inbox.items.length < 8, `the pool should still be busy at SIGTERM (${c.inbox.items.length} answers already in)`);
      const info = await within(srv.exited, 15000, 'the daemon to exit');
      assert.deepEqual(info, { code: 0, signal: null }, srv.log().slice(-2000));
      assert.equal((await c.waitClose(2000)).code, 1001);
    } finally {
      await finish(srv);
    }
  });
});
