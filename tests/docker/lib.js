'use strict';
// Helpers of the Docker tests (tests/docker/*.test.js, run by scripts/docker-test, which sets
// DOCKER_HOST, WSHUB_DOCKER_IMAGE, WSHUB_DOCKER_BASE, WSHUB_DOCKER_LABEL and WSHUB_DEB).
// Every container runs with the host's network and carries the run's label, so that
// scripts/docker-test removes whatever a failed test leaves. Every wait is bounded.
const crypto = require('node:crypto');
const net = require('node:net');
const http = require('node:http');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { within, waitFor, sleep } = require('../e2e/lib/util');

const WebSocket = require(require.resolve('ws', { paths: [path.join(__dirname, '../e2e')] }));

const ROOT = path.resolve(__dirname, '../..');
const IMAGE = process.env.WSHUB_DOCKER_IMAGE || 'wshub:test';
const BASE = process.env.WSHUB_DOCKER_BASE || 'wshub-local/debian:12-minbase';
const LABEL = process.env.WSHUB_DOCKER_LABEL || 'wshub-docker-test=manual';

// Runs a command; resolves {code, stdout, stderr} (never rejects on a non-zero exit).
function run(cmd, args, { timeout = 120000, env } = {}) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout, maxBuffer: 64 << 20, env: env ? { ...process.env, ...env } : process.env },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : (err.killed ? 'timeout' : String(err.code))) : 0;
        resolve({ code, stdout, stderr });
      });
  });
}

const docker = (args, opts) => run('docker', args, opts);

// Like docker() but throws with the output when the exit code is not 0.
async function dockerOk(args, opts) {
  const r = await docker(args, opts);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout.trim();
}

// A free TCP port on 127.0.0.1 (the containers share the host's network).
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// Starts a detached container of the image with the host's network; returns its name.
async function runContainer({ name, env = {}, args = [], dockerArgs = [], image = IMAGE }) {
  const e = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  await docker(['rm', '-f', name]);
  await dockerOk(['run', '-d', '--name', name, '--label', LABEL, '--network', 'host', ...dockerArgs, ...e, image, ...args]);
  return name;
}

async function inspect(name, format) {
  return dockerOk(['inspect', '-f', format, name]);
}

// One HTTP request to 127.0.0.1:port; resolves {status, headers, text}. body: an object, sent
// as JSON.
function request(port, method, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port, path: p, method, agent: false, timeout: 5000,
      headers: { ...(data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {}), ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${p} timed out`)));
    req.on('error', reject);
    req.end(data || undefined);
  });
}
const get = (port, p, headers) => request(port, 'GET', p, undefined, headers);
const post = (port, p, body, headers) => request(port, 'POST', p, body, headers);

// Waits until GET /healthz on port answers 200.
function waitHealthz(port, ms = 15000) {
  return waitFor(() => get(port, '/healthz').then((r) => r.status === 200, () => false), ms, `GET /healthz on ${port}`, 100);
}

// An HS256 JWT.
function jwt(claims, secret) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

// A WebSocket client that keeps every message (parsed when JSON) and its close; next(pred)
// waits (bounded) for the first message not yet taken that matches.
function client(url, { headers = {}, protocols } = {}) {
  const ws = new WebSocket(url, protocols, { headers, perMessageDeflate: false });
  const c = { ws, messages: [], closed: null, upgradeHeaders: null, waiters: [] };
  ws.on('upgrade', (res) => { c.upgradeHeaders = res.headers; });
  ws.on('message', (data, isBinary) => {
    let m = isBinary ? data : data.toString();
    try { m = JSON.parse(m); } catch { /* text */ }
    c.messages.push(m);
    c.waiters.forEach((w) => w());
  });
  ws.on('close', (code, reason) => { c.closed = { code, reason: reason.toString() }; c.waiters.forEach((w) => w()); });
  ws.on('error', () => {});
  c.opened = within(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => reject(new Error(`${url}: HTTP ${res.statusCode}`)));
  }), 10000, `connect ${url}`);
  c.next = (pred, ms = 5000, what = 'a message') => within(new Promise((resolve, reject) => {
    const check = () => {
      const i = c.messages.findIndex(pred);
      if (i >= 0) {
        const [m] = c.messages.splice(i, 1);
        c.waiters = c.waiters.filter((w) => w !== check);
        resolve(m);
      } else if (c.closed) {
        c.waiters = c.waiters.filter((w) => w !== check);
        reject(new Error(`closed ${JSON.stringify(c.closed)} before ${what}`));
      }
    };
    c.waiters.push(check);
    check();
  }), ms, what);
  c.closedWith = (ms = 15000) => within(new Promise((resolve) => {
    const check = () => { if (c.closed) resolve(c.closed); };
    c.waiters.push(check);
    check();
  }), ms, 'the close');
  c.send = (o) => ws.send(typeof o === 'string' ? o : JSON.stringify(o));
  return c;
}

module.exports = {
  ROOT, IMAGE, BASE, LABEL, run, docker, dockerOk, freePort, runContainer, inspect, get, post,
  waitHealthz, jwt, client, within, waitFor, sleep,
};
