'use strict';
// TLS: wshubd with tls.cert/tls.key serves https:// and wss:// with a throw-away self-signed
// certificate made at test time by the openssl command. Every client verifies the
// certificate for real (ca = the certificate; no rejectUnauthorized: false).
const { test, before, after } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const tls = require('node:tls');
const https = require('node:https');
const crypto = require('node:crypto');
const { execFileSync, spawnSync } = require('node:child_process');
const WebSocket = require('ws');
const WebSocketClient = require('websocket').client;

const { spawn } = require('node:child_process');
const { BIN, freePort, SANITIZER } = require('./lib/server');

let dir;
let certFile;
let keyFile;
let ca;
let srv;

function makeCert() {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wshub-tls-'));
  certFile = path.join(dir, 'cert.pem');
  keyFile = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', keyFile, '-out', certFile], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20000 });
  ca = fs.readFileSync(certFile);
}

// lib/server.js start() waits for a plain-HTTP /healthz, which a TLS listener never answers;
// this is the same start-up and teardown with an https readiness probe (verified against ca).
async function startTls({ config, env = {}, readyTimeout = 15000 }) {
  const port = await freePort();
  const sdir = fs.mkdtempSync(path.join(dir, 'srv-'));
  const logFile = path.join(sdir, 'server.log');
  const cfgFile = path.join(sdir, 'wshub.json');
  fs.writeFileSync(cfgFile, JSON.stringify(config, null, 2));
  const out = fs.openSync(logFile, 'a');
  const child = spawn(BIN, ['-c', cfgFile], {
    cwd: sdir, stdio: ['ignore', out, out],
    env: { ...process.env, WSHUB_LISTEN: `127.0.0.1:${port}`, WSHUB_WORKERS: '2', WSHUB_LOG_LEVEL: 'info', ...env },
  });
  fs.closeSync(out);
  let exitInfo = null;
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => { exitInfo = { code, signal }; resolve(exitInfo); }));
  const log = () => { try { return fs.readFileSync(logFile, 'utf8'); } catch { return ''; } };
  const inst = {
    port, logFile, log,
    alive: () => exitInfo === null,
    async teardown() {
      const wasAlive = inst.alive();
      if (!exitInfo) {
        child.kill('SIGTERM');
        const t = setTimeout(() => { if (!exitInfo) child.kill('SIGKILL'); }, 10000);
        await exited;
        clearTimeout(t);
      }
      const text = log();
      const m = SANITIZER.exec(text);
      if (m) throw new Error(`sanitizer report in ${logFile}:\n${text.slice(Math.max(0, m.index - 200), m.index + 3000)}`);
      if (!wasAlive) throw new Error(`wshubd died during the test: ${JSON.stringify(exitInfo)}\n${text.slice(-3000)}`);
      if (exitInfo.code !== 0) throw new Error(`wshubd exited ${JSON.stringify(exitInfo)} on SIGTERM\n${text.slice(-3000)}`);
    },
  };
  const deadline = Date.now() + readyTimeout;
  while (Date.now() < deadline) {
    if (exitInfo) throw new Error(`wshubd exited before it was ready: ${JSON.stringify(exitInfo)}\n${log()}`);
    try {
      if ((await httpsGet('/healthz', { port, timeout: 1000 })).status === 200) return inst;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill('SIGKILL');
  await exited;
  throw new Error(`wshubd (TLS) not ready within ${readyTimeout} ms\n${log()}`);
}

let fast; // small HTTP timeouts
const REQ_TIMEOUT = 300;

before(async () => {
  makeCert();
  const r = await Promise.allSettled([
    startTls({ config: { tls: { cert: certFile, key: keyFile } } }),
    startTls({ config: { tls: { cert: certFile, key: keyFile }, http: { request_timeout_ms: REQ_TIMEOUT, keepalive_timeout_ms: REQ_TIMEOUT } } }),
  ]);
  [srv, fast] = r.map((x) => (x.status === 'fulfilled' ? x.value : undefined));
  const failed = r.find((x) => x.status === 'rejected');
  if (failed) throw failed.reason; // after() stops the one that did start
});

after(async () => {
  const errs = [];
  for (const s of [srv, fast]) {
    if (!s) continue;
    try { await s.teardown(); } catch (e) { errs.push(e); }
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (errs.length) throw errs[0];
});

function httpsGet(p, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', path: p, ca, agent: false, timeout: 5000, ...opts, port: opts.port || srv.port }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'),
        authorized: res.socket.authorized, protocol: res.socket.getProtocol && res.socket.getProtocol() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${p} timed out`)));
    req.on('error', reject);
  });
}

async function metric(key) {
  const r = await httpsGet('/metrics');
  assert.strictEqual(r.status, 200);
  for (const line of r.body.split('\n')) {
    const i = line.lastIndexOf(' ');
    if (i > 0 && line.slice(0, i) === key) return Number(line.slice(i + 1));
  }
  assert.fail(`no sample ${key} in /metrics`);
}

function openWss(url, opts = {}, timeout = 10000) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ca, ...opts });
    const t = setTimeout(() => { ws.terminate(); reject(new Error(`wss open of ${url} timed out`)); }, timeout);
    ws.once('open', () => { clearTimeout(t); resolve(ws); });
    ws.once('error', (e) => { clearTimeout(t); reject(e); });
  });
}

function nextMessage(ws, timeout = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no message in time')), timeout);
    ws.once('message', (data, isBinary) => { clearTimeout(t); resolve({ data, isBinary }); });
    ws.once('close', (code) => { clearTimeout(t); reject(new Error(`closed ${code} before a message`)); });
  });
}

function closeWs(ws, timeout = 5000) {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve(null);
    const t = setTimeout(() => { ws.terminate(); resolve(null); }, timeout);
    ws.once('close', (code) => { clearTimeout(t); resolve(code); });
    ws.close(1000);
  });
}

test('https GET /healthz with the certificate as the only CA (verified)', async () => {
  const r = await httpsGet('/healthz');
  assert.strictEqual(r.status, 200);
  assert.strictEqual(r.authorized, true, 'the certificate chain verified');
  assert.match(r.headers['content-type'], /application\/json/);
  assert.doesNotThrow(() => JSON.parse(r.body));
  assert.ok(['TLSv1.2', 'TLSv1.3'].includes(r.protocol), `protocol ${r.protocol}`);
  // The name check is real too: "localhost" is in the certificate, "example.com" is not.
  const byName = await httpsGet('/healthz', { servername: 'localhost', checkServerIdentity: (h, cert) => tls.checkServerIdentity('localhost', cert) });
  assert.strictEqual(byName.status, 200);
  await assert.rejects(httpsGet('/healthz', { checkServerIdentity: (h, cert) => tls.checkServerIdentity('example.com', cert) }),
    /ERR_TLS_CERT_ALTNAME_INVALID|does not match|not in the cert/i);
  // And without the CA the chain does not verify.
  await assert.rejects(httpsGet('/healthz', { ca: undefined }), /self[- ]signed|unable to verify|DEPTH_ZERO/i);
});

test('TLS 1.2 and TLS 1.3 both work; keep-alive over TLS', async () => {
  for (const v of ['TLSv1.2', 'TLSv1.3']) {
    const r = await httpsGet('/healthz', { minVersion: v, maxVersion: v });
    assert.strictEqual(r.status, 200, v);
    assert.strictEqual(r.protocol, v);
  }
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
  try {
    const sockets = new Set();
    for (let i = 0; i < 3; i++) {
      const r = await new Promise((resolve, reject) => {
        const req = https.get({ host: '127.0.0.1', port: srv.port, path: '/healthz', agent, timeout: 5000 }, (res) => {
          sockets.add(res.socket);
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
      });
      assert.strictEqual(r, 200);
    }
    assert.strictEqual(sockets.size, 1, 'three requests on one TLS connection');
  } finally {
    agent.destroy();
  }
});

test('wss:// /echo with the ws client: text and a 200 KB binary message', async () => {
  const ws = await openWss(`wss://127.0.0.1:${srv.port}/echo`);
  let got = nextMessage(ws);
  ws.send('hello over tls ✓');
  let m = await got;
  assert.strictEqual(m.isBinary, false);
  assert.strictEqual(m.data.toString('utf8'), 'hello over tls ✓');

  const big = crypto.randomBytes(200 * 1024);
  got = nextMessage(ws);
  ws.send(big);
  m = await got;
  assert.strictEqual(m.isBinary, true);
  assert.strictEqual(m.data.length, big.length);
  assert.ok(Buffer.compare(m.data, big) === 0, 'the 200 KB message came back unchanged');
  assert.strictEqual(await closeWs(ws), 1000);
});

test('wss:// /echo with the websocket npm client', async () => {
  const client = new WebSocketClient({ tlsOptions: { ca } });
  const conn = await new Promise((resolve, reject) => {
    const t = setTimeout(() => { client.abort(); reject(new Error('websocket client connect timed out')); }, 10000);
    client.once('connect', (c) => { clearTimeout(t); resolve(c); });
    client.once('connectFailed', (e) => { clearTimeout(t); reject(e); });
    client.connect(`wss://127.0.0.1:${srv.port}/echo`);
  });
  try {
    const echo = (send) => new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no echo in time')), 10000);
      conn.once('message', (msg) => { clearTimeout(t); resolve(msg); });
      send();
    });
    let msg = await echo(() => conn.sendUTF('from the websocket package'));
    assert.strictEqual(msg.type, 'utf8');
    assert.strictEqual(msg.utf8Data, 'from the websocket package');
    // The package fragments outgoing messages above 16 KiB: the echo is one message.
    const big = crypto.randomBytes(100 * 1024);
    msg = await echo(() => conn.sendBytes(big));
    assert.strictEqual(msg.type, 'binary');
    assert.ok(Buffer.compare(msg.binaryData, big) === 0);
  } finally {
    await new Promise((resolve) => {
      const t = setTimeout(() => { conn.drop(); resolve(); }, 5000);
      conn.once('close', () => { clearTimeout(t); resolve(); });
      conn.close();
    });
  }
});

test('a TLS 1.1-only client is refused', async (t) => {
  const before = await metric('wshub_handshake_failures_total{reason="tls"}');
  const err = await new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1',
      ciphers: 'DEFAULT@SECLEVEL=0' });
    const t = setTimeout(() => { s.destroy(); resolve(new Error('no outcome within 5 s')); }, 5000);
    s.once('secureConnect', () => { clearTimeout(t); const p = s.getProtocol(); s.destroy(); resolve({ connected: p }); });
    s.once('error', (e) => { clearTimeout(t); resolve(e); });
    s.once('close', () => { clearTimeout(t); resolve(new Error('closed without a handshake')); });
  });
  assert.ok(!(err && err.connected), `a TLS 1.1 session was established: ${err && err.connected}`);
  assert.ok(err instanceof Error, String(err));
  t.diagnostic(`TLS 1.1 client: ${err.code || ''} ${err.message}`);
  // The refusal comes from the server (a protocol_version alert or a close), not from a
  // client that could not even offer TLS 1.1: the server counts it.
  const after = await metric('wshub_handshake_failures_total{reason="tls"}');
  assert.ok(after >= before + 1, `tls handshake failures ${before} -> ${after} (client error: ${err.code || ''} ${err.message})`);
  assert.strictEqual((await httpsGet('/healthz')).status, 200);
});

test('a refused TLS handshake is told why: the client gets a protocol_version alert', async () => {
  // OpenSSL writes the alert; it has to reach the client before the connection closes, or the
  // client only sees a reset/EOF and cannot tell "TLS 1.1 not supported" from a crash.
  const err = await new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1',
      ciphers: 'DEFAULT@SECLEVEL=0' });
    const t = setTimeout(() => { s.destroy(); resolve(new Error('no outcome within 5 s')); }, 5000);
    s.once('secureConnect', () => { clearTimeout(t); s.destroy(); resolve(new Error('connected')); });
    s.once('error', (e) => { clearTimeout(t); resolve(e); });
  });
  assert.match(`${err.code} ${err.message}`, /ALERT_PROTOCOL_VERSION|alert protocol version/i,
    `expected a protocol_version alert, got: ${err.code} ${err.message}`);
});

test('plain HTTP to the TLS port: no 200, no crash', async (t) => {
  const got = await new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: srv.port });
    const chunks = [];
    const t = setTimeout(() => { s.destroy(); resolve({ data: Buffer.concat(chunks), timedOut: true }); }, 5000);
    s.on('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(t); resolve({ data: Buffer.concat(chunks), timedOut: false }); });
  });
  const text = got.data.toString('latin1');
  t.diagnostic(`plain HTTP got ${got.data.length} bytes: ${got.data.subarray(0, 16).toString('hex')}`);
  assert.doesNotMatch(text, /^HTTP\/1\.[01] 200/, `plain HTTP got a 200: ${JSON.stringify(text.slice(0, 200))}`);
  assert.strictEqual(got.timedOut, false, 'the server closes a connection that does not speak TLS');
  assert.ok(srv.alive(), 'wshubd is still running');
  assert.strictEqual((await httpsGet('/healthz')).status, 200);
  // A plain WebSocket handshake, too.
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/echo`);
  const outcome = await new Promise((resolve) => {
    const t = setTimeout(() => { ws.terminate(); resolve('timeout'); }, 5000);
    ws.once('open', () => { clearTimeout(t); ws.terminate(); resolve('open'); });
    ws.once('error', () => { clearTimeout(t); resolve('error'); });
  });
  assert.strictEqual(outcome, 'error');
  assert.strictEqual((await httpsGet('/healthz')).status, 200);
});

test('50 concurrent wss clients each get their own echo', async () => {
  const N = 50;
  const clients = await Promise.all(Array.from({ length: N }, () => openWss(`wss://127.0.0.1:${srv.port}/echo`)));
  try {
    const results = await Promise.all(clients.map(async (ws, i) => {
      const payloads = [`client-${i}-a`, crypto.randomBytes(3000 + i * 100), `client-${i}-b`];
      const got = [];
      const all = new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`client ${i}: ${got.length}/3 echoes in time`)), 20000);
        ws.on('message', (data, isBinary) => {
          got.push({ data, isBinary });
          if (got.length === payloads.length) { clearTimeout(t); resolve(); }
        });
      });
      for (const p of payloads) ws.send(p);
      await all;
      return payloads.every((p, k) => (typeof p === 'string'
        ? !got[k].isBinary && got[k].data.toString() === p
        : got[k].isBinary && Buffer.compare(got[k].data, p) === 0));
    }));
    assert.deepStrictEqual(results.map((ok, i) => (ok ? null : i)).filter((x) => x !== null), [], 'clients with a wrong echo');
  } finally {
    await Promise.all(clients.map((ws) => closeWs(ws)));
  }
});

test('an incomplete TLS handshake does not stall other TLS clients', async () => {
  // A client that sends half a ClientHello, and one that connects and sends nothing.
  const half = net.connect({ host: '127.0.0.1', port: srv.port });
  const idle = net.connect({ host: '127.0.0.1', port: srv.port });
  half.on('error', () => {});
  idle.on('error', () => {});
  await new Promise((r) => half.once('connect', r));
  half.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
  try {
    const t0 = performance.now();
    const ws = await openWss(`wss://127.0.0.1:${srv.port}/echo`);
    const ms = performance.now() - t0;
    const got = nextMessage(ws);
    ws.send('still fine');
    assert.strictEqual((await got).data.toString(), 'still fine');
    await closeWs(ws);
    assert.ok(ms < 1000, `wss open took ${ms.toFixed(0)} ms`);
  } finally {
    half.destroy();
    idle.destroy();
  }
});

// A raw TLS connection (verified) with a byte buffer, for exact bytes over TLS.
async function rawTls(port) {
  const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
  const st = { s, buf: Buffer.alloc(0), ended: false, waiters: new Set() };
  const wake = () => { for (const w of [...st.waiters]) w(); };
  s.on('data', (d) => { st.buf = Buffer.concat([st.buf, d]); wake(); });
  s.on('end', () => { st.ended = true; wake(); });
  s.on('close', () => { st.ended = true; wake(); });
  s.on('error', (e) => { st.error = e; st.ended = true; wake(); });
  await new Promise((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject); });
  st.waitFor = (pred, timeout, what) => new Promise((resolve, reject) => {
    const check = () => { const v = pred(); if (v) { done(); resolve(v); } };
    const t = setTimeout(() => { done(); reject(new Error(`timed out waiting for ${what}: ${JSON.stringify(st.buf.toString('latin1').slice(0, 200))}`)); }, timeout);
    const done = () => { clearTimeout(t); st.waiters.delete(check); };
    st.waiters.add(check);
    check();
  });
  return st;
}

function maskedFrame(opcode, text) {
  const p = Buffer.from(text);
  const mask = crypto.randomBytes(4);
  const out = Buffer.alloc(6 + p.length);
  out[0] = 0x80 | opcode;
  out[1] = 0x80 | p.length; // < 126
  mask.copy(out, 2);
  for (let i = 0; i < p.length; i++) out[6 + i] = p[i] ^ mask[i & 3];
  return out;
}

test('over TLS, a first frame in the same record as the upgrade request is processed', async () => {
  const st = await rawTls(srv.port);
  const key = crypto.randomBytes(16).toString('base64');
  const req = `GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  st.s.write(Buffer.concat([Buffer.from(req), maskedFrame(1, 'same record')]));
  try {
    await st.waitFor(() => st.buf.indexOf('\r\n\r\n') >= 0, 5000, 'the 101');
    const headEnd = st.buf.indexOf('\r\n\r\n') + 4;
    const head = st.buf.subarray(0, headEnd).toString('latin1');
    assert.match(head, /^HTTP\/1\.1 101 /);
    const accept = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    assert.match(head, new RegExp(`\r\nSec-WebSocket-Accept: ${accept.replace(/[+/]/g, '\\$&')}\r\n`, 'i'));
    await st.waitFor(() => st.buf.length >= headEnd + 2 + 11, 5000, 'the echoed frame');
    const f = st.buf.subarray(headEnd);
    assert.strictEqual(f[0], 0x81);
    assert.strictEqual(f[1], 11);
    assert.strictEqual(f.subarray(2, 13).toString(), 'same record');
  } finally {
    st.s.destroy();
  }
});

test(`over TLS, http.request_timeout_ms (${REQ_TIMEOUT}): an incomplete request gets 408, a stalled TLS handshake is closed`, async () => {
  const st = await rawTls(fast.port);
  const t0 = performance.now();
  st.s.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n');
  try {
    await st.waitFor(() => st.ended, REQ_TIMEOUT + 3000, 'the 408 and the close');
    const ms = performance.now() - t0;
    assert.match(st.buf.toString('latin1'), /^HTTP\/1\.1 408 /);
    assert.ok(ms >= REQ_TIMEOUT - 30 && ms < REQ_TIMEOUT + 1500, `closed after ${ms.toFixed(0)} ms`);
  } finally {
    st.s.destroy();
  }
  // A TCP client that starts a TLS handshake and stops (half a ClientHello).
  const s = net.connect({ host: '127.0.0.1', port: fast.port });
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  const t1 = performance.now();
  s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
  const closedAfter = await new Promise((resolve) => {
    const t = setTimeout(() => resolve(null), REQ_TIMEOUT + 3000);
    s.once('close', () => { clearTimeout(t); resolve(performance.now() - t1); });
    s.resume();
  });
  s.destroy();
  assert.ok(closedAfter !== null, 'the stalled TLS handshake was never closed');
  assert.ok(closedAfter >= REQ_TIMEOUT - 30, `closed after ${closedAfter.toFixed(0)} ms`);
});

function checkConfig(env, args = []) {
  const cwd = fs.mkdtempSync(path.join(dir, 'cc-'));
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WSHUB_')));
  const r = spawnSync(BIN, ['--check-config', ...args], { cwd, env: { ...clean, ...env }, encoding: 'utf8', timeout: 20000 });
  return { status: r.status, signal: r.signal, out: `${r.stdout || ''}${r.stderr || ''}`.trim() };
}

test('--check-config with a missing cert file: non-zero exit, one line naming tls.cert', () => {
  const missing = path.join(dir, 'no-such-cert.pem');
  // From the environment ...
  let r = checkConfig({ WSHUB_TLS_CERT: missing, WSHUB_TLS_KEY: keyFile });
  assert.ok(r.status !== 0 && r.status !== null, `exit ${r.status} (signal ${r.signal}): ${r.out}`);
  assert.strictEqual(r.out.split('\n').length, 1, `one line: ${JSON.stringify(r.out)}`);
  assert.match(r.out, /tls\.cert/);
  assert.doesNotMatch(r.out, /AddressSanitizer|LeakSanitizer|runtime error/);
  // ... and from a config file.
  const cfg = path.join(dir, 'missing-cert.json');
  fs.writeFileSync(cfg, JSON.stringify({ tls: { cert: missing, key: keyFile } }));
  r = checkConfig({}, ['-c', cfg]);
  assert.ok(r.status !== 0 && r.status !== null, `exit ${r.status} (signal ${r.signal}): ${r.out}`);
  assert.strictEqual(r.out.split('\n').length, 1, `one line: ${JSON.stringify(r.out)}`);
  assert.match(r.out, /tls\.cert/);
  // The good pair passes.
  r = checkConfig({ WSHUB_TLS_CERT: certFile, WSHUB_TLS_KEY: keyFile });
  assert.strictEqual(r.status, 0, r.out);
});

test('--check-config with a cert and no key, or a key that does not match: one line naming the key', () => {
  let r = checkConfig({ WSHUB_TLS_CERT: certFile });
  assert.ok(r.status !== 0 && r.status !== null, `exit ${r.status}: ${r.out}`);
  assert.strictEqual(r.out.split('\n').length, 1, `one line: ${JSON.stringify(r.out)}`);
  assert.match(r.out, /tls\.key/);
  const otherKey = path.join(dir, 'other-key.pem');
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', otherKey],
    { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20000 });
  r = checkConfig({ WSHUB_TLS_CERT: certFile, WSHUB_TLS_KEY: otherKey });
  assert.ok(r.status !== 0 && r.status !== null, `exit ${r.status}: ${r.out}`);
  assert.strictEqual(r.out.split('\n').length, 1, `one line: ${JSON.stringify(r.out)}`);
  assert.match(r.out, /tls\.key/);
});

test('the TLS servers are still healthy', async () => {
  for (const s of [srv, fast]) {
    assert.ok(s.alive());
    assert.strictEqual((await httpsGet('/healthz', { port: s.port })).status, 200);
  }
});
