'use strict';
// Starts a private redis-server for one test file (issue 13's scale-out tests): Debian's
// /usr/bin/redis-server as a plain child process (no systemd), a free port on 127.0.0.1, its own
// temporary directory, no persistence. Readiness is PING answered +PONG over a raw socket (RESP,
// no npm client). stop() and start() again on the same port simulate an outage; teardown() stops
// it, fails if it died on its own, and removes its directory.
//   WSHUB_REDIS_BIN   path to redis-server (default /usr/bin/redis-server)
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');

const { freePort } = require('./server');

const REDIS_BIN = process.env.WSHUB_REDIS_BIN || '/usr/bin/redis-server';

// ------------------------------------------------------------------ RESP

function encode(args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const b = Buffer.from(String(a));
    parts.push(`$${b.length}\r\n`, b, '\r\n');
  }
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
}

// One reply from buf at off: { value, end } or null when incomplete. Errors become Error values.
function decode(buf, off = 0) {
  const eol = buf.indexOf('\r\n', off);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[off]);
  const line = buf.toString('utf8', off + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+': return { value: line, end: next };
    case '-': return { value: new Error(line), end: next };
    case ':': return { value: Number(line), end: next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (buf.length < next + n + 2) return null;
      return { value: buf.toString('utf8', next, next + n), end: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const items = [];
      let at = next;
      for (let i = 0; i < n; i++) {
        const r = decode(buf, at);
        if (!r) return null;
        items.push(r.value);
        at = r.end;
      }
      return { value: items, end: at };
    }
    default: throw new Error(`not RESP: ${JSON.stringify(buf.toString('utf8', off, eol))}`);
  }
}

// Sends one command on a new connection and resolves its reply (an Error value for a Redis
// error reply); rejects on a connection error (err.code, e.g. ECONNREFUSED) or after timeout ms.
function command(port, args, { timeout = 1000, host = '127.0.0.1' } = {}) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const sock = net.connect({ port, host });
    const done = (fn, v) => { clearTimeout(timer); sock.destroy(); fn(v); };
    const timer = setTimeout(() => done(reject, new Error(`redis ${args[0]}: no reply within ${timeout} ms`)), timeout);
    sock.on('connect', () => sock.write(encode(args)));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      let r;
      try { r = decode(buf); } catch (e) { done(reject, e); return; }
      if (r) done(resolve, r.value);
    });
    sock.on('error', (e) => done(reject, e));
    sock.on('close', () => done(reject, new Error(`redis ${args[0]}: connection closed before a reply`)));
  });
}

// '+PONG' -> true; anything else (refused, loading, no answer) -> false.
async function ping(port, timeout = 500) {
  try { return (await command(port, ['PING'], { timeout })) === 'PONG'; } catch { return false; }
}

// ------------------------------------------------------------------ the server

// Resolves to a handle { port, url, dir, start(), stop(), restart(), teardown(), command(),
// ping(), log() } once the server answers PING. opts.port: a fixed port (default: a free one);
// opts.args: extra redis-server arguments; opts.readyTimeout: ms to wait for PONG.
async function startRedis({ port, args = [], readyTimeout = 5000 } = {}) {
  const p = port || await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wshub-redis-'));
  const logFile = path.join(dir, 'redis.log');
  let child = null;
  let exitInfo = null;
  let exited = Promise.resolve(null);
  let stopping = false;
  let diedOnItsOwn = null;

  const inst = {
    port: p, dir, logFile,
    url: `redis://127.0.0.1:${p}/0`,
    get pid() { return child ? child.pid : null; },
    alive: () => child !== null && exitInfo === null,
    log: () => { try { return fs.readFileSync(logFile, 'utf8'); } catch { return ''; } },
    command: (a, o) => command(p, a, o),
    ping: (t) => ping(p, t),

    // Starts redis-server on the port (again, after stop()); resolves once it answers PING.
    async start() {
      if (inst.alive()) throw new Error(`redis-server on ${p} is already running`);
      const out = fs.openSync(logFile, 'a');
      child = spawn(REDIS_BIN, ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
        '--dir', dir, '--daemonize', 'no', ...args], { cwd: dir, stdio: ['ignore', out, out] });
      fs.closeSync(out);
      exitInfo = null;
      stopping = false;
      const c = child;
      exited = new Promise((resolve) => c.on('exit', (code, signal) => {
        exitInfo = { code, signal };
        if (!stopping && !diedOnItsOwn) diedOnItsOwn = exitInfo;
        resolve(exitInfo);
      }));
      const deadline = Date.now() + readyTimeout;
      while (Date.now() < deadline) {
        if (exitInfo) throw new Error(`redis-server exited before it answered PING: ${JSON.stringify(exitInfo)}\n${inst.log().slice(-3000)}`);
        if (await ping(p, 200)) return inst;
        await new Promise((r) => setTimeout(r, 20));
      }
      await inst.stop(500);
      throw new Error(`redis-server on ${p} did not answer PING within ${readyTimeout} ms\n${inst.log().slice(-3000)}`);
    },

    // SIGTERM, wait up to grace ms, then SIGKILL. Resolves the exit info (null if never started).
    async stop(grace = 3000) {
      if (!child) return null;
      if (!exitInfo) {
        stopping = true;
        child.kill('SIGTERM');
        const t = setTimeout(() => { if (!exitInfo) child.kill('SIGKILL'); }, grace);
        await exited;
        clearTimeout(t);
      }
      return exitInfo;
    },

    // An outage of downMs on the same port: stop, wait, start.
    async restart(downMs = 0) {
      await inst.stop();
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      return inst.start();
    },

    // Stops it, removes its directory, and throws if it had died without being asked to.
    async teardown() {
      await inst.stop();
      const log = inst.log();
      fs.rmSync(dir, { recursive: true, force: true });
      if (diedOnItsOwn) throw new Error(`redis-server on ${p} died during the test: ${JSON.stringify(diedOnItsOwn)}\n${log.slice(-3000)}`);
    },
  };
  try {
    return await inst.start();
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

module.exports = { REDIS_BIN, startRedis, command, ping, encode, decode };
