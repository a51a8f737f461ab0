'use strict';
const fs = require('node:fs');
const http = require('node:http');
// Small helpers the end-to-end test files share: every wait is bounded.

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Rejects when the promise has not settled within ms.
function within(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// For the few things that give no event (counters, log lines): bounded polling.
async function waitFor(fn, ms, what, every = 20) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

// Waits until `re` matches the log of a lib/server.js instance (fs.watch on the file; bounded).
function waitLog(inst, re, ms, what) {
  return new Promise((resolve, reject) => {
    let watcher = null;
    let timer = null;
    let done = false;
    const finish = (err, m) => {
      if (done) return;
      done = true;
      if (watcher) watcher.close();
      clearTimeout(timer);
      if (err) reject(err); else resolve(m);
    };
    const check = () => {
      const m = re.exec(inst.log());
      if (m) finish(null, m);
    };
    watcher = fs.watch(inst.logFile, check);
    timer = setTimeout(() => finish(new Error(`timed out after ${ms} ms waiting for ${what} in the log:\n${inst.log().slice(-1500)}`)), ms);
    check();
  });
}

const now = () => Math.floor(Date.now() / 1000);

// One HTTP request to a lib/server.js instance; resolves {status, headers, text, body, json}
// (body is text again, json is parse(text) or null). body: an object (sent as JSON), a string or
// a Buffer. agent: false for a connection of its own, or an http.Agent.
function httpRequest(inst, { method = 'GET', path: p = '/', headers = {}, body, agent = false, timeout = 10000, parse } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined
      : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port: inst.port, method, path: p, agent, timeout,
      headers: { ...(data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {}), ...headers } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        if (parse) json = text ? parse(text) : null;
        else try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, body: text, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${p}: no answer within ${timeout} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}

// The samples of a /metrics text as {'name{labels}': value}.
function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

module.exports = { sleep, within, waitFor, waitLog, now, httpRequest, parseMetrics };
