'use strict';
// Starts a private wshubd for one test file: a free port on 127.0.0.1, no config file unless
// given, the environment the test asks for. Readiness is GET /healthz answering 200; teardown
// stops it with SIGTERM and fails if it exited badly or its log carries a sanitizer report
// (AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer or ThreadSanitizer).
//   WSHUB_BIN   path to the binary under test (set by scripts/test; default build/wshubd)
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const http = require('node:http');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = process.env.WSHUB_BIN ? path.resolve(process.env.WSHUB_BIN) : path.join(ROOT, 'build', 'wshubd');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function get(port, p, { timeout = 1000, headers = {} } = {}) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, timeout, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0 }));
  });
}

const SANITIZER = /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer|WARNING: ThreadSanitizer|ERROR: ThreadSanitizer)/;

// Starts wshubd. opts.env: extra WSHUB_* variables; opts.config: an object written as the
// JSON config file; opts.args: extra arguments; opts.listenHost: the address to bind (tests
// talk to it through 127.0.0.1 whatever it is); opts.wrap: a command line the binary runs
// under, e.g. ['prlimit', '--nofile=256:256'] (it must exec). Resolves to an instance handle.
async function start({ env = {}, config, args = [], readyTimeout = 10000, listenHost = '127.0.0.1', wrap = [] } = {}) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wshub-e2e-'));
  const logFile = path.join(dir, 'server.log');
  const argv = [...args];
  if (config) {
    const cfgFile = path.join(dir, 'wshub.json');
    fs.writeFileSync(cfgFile, JSON.stringify(config, null, 2));
    argv.push('-c', cfgFile);
  }
  const childEnv = { ...process.env, WSHUB_LISTEN: `${listenHost}:${port}`, WSHUB_PUBLIC_URL: `http://127.0.0.1:${port}`,
    WSHUB_WORKERS: '2', WSHUB_LOG_LEVEL: 'info',
    // Tests find connections by their info lines (ws_open, http_refused): every line is written
    // unless a test sets a limit (08-dev-secrets.test.js checks the limit itself).
    WSHUB_LOG_RATE_LIMIT_PER_S: '0', ...env };
  const out = fs.openSync(logFile, 'a');
  const child = wrap.length ? spawn(wrap[0], [...wrap.slice(1), BIN, ...argv], { env: childEnv, cwd: dir, stdio: ['ignore', out, out] })
    : spawn(BIN, argv, { env: childEnv, cwd: dir, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  let exitInfo = null;
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => { exitInfo = { code, signal }; resolve(exitInfo); }));
  const inst = {
    port, pid: child.pid, child, dir, logFile, exited,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    get exitInfo() { return exitInfo; },
    alive: () => exitInfo === null,
    log: () => { try { return fs.readFileSync(logFile, 'utf8'); } catch { return ''; } },
    get: (p, o) => get(port, p, o),
    // SIGTERM, wait (bounded), SIGKILL if needed. Resolves the exit info.
    async stop(grace = 10000) {
      if (!exitInfo) {
        child.kill('SIGTERM');
        const t = setTimeout(() => { if (!exitInfo) child.kill('SIGKILL'); }, grace);
        await exited;
        clearTimeout(t);
      }
      return exitInfo;
    },
    // Stops the server and throws if it died, exited non-zero or reported a sanitizer error.
    async teardown() {
      const wasAlive = inst.alive();
      const info = await inst.stop();
      const log = inst.log();
      const m = SANITIZER.exec(log);
      if (m) throw new Error(`sanitizer report in ${logFile}:\n${log.slice(Math.max(0, m.index - 200), m.index + 3000)}`);
      if (!wasAlive) throw new Error(`wshubd died during the test: ${JSON.stringify(info)}\n${log.slice(-3000)}`);
      if (info.code !== 0) throw new Error(`wshubd exited ${JSON.stringify(info)} on SIGTERM\n${log.slice(-3000)}`);
    },
  };
  const deadline = Date.now() + readyTimeout;
  while (Date.now() < deadline) {
    if (exitInfo) throw new Error(`wshubd exited before it was ready: ${JSON.stringify(exitInfo)}\n${inst.log()}`);
    if ((await get(port, '/healthz')).status === 200) return inst;
    await new Promise((r) => setTimeout(r, 25));
  }
  await inst.stop(1000);
  throw new Error(`wshubd not ready within ${readyTimeout} ms\n${inst.log()}`);
}

module.exports = { BIN, ROOT, start, freePort, get, SANITIZER };
