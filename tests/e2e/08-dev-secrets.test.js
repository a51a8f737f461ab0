'use strict';
// Issue 11's operational guards. The log's rate limit: a flood of refused requests is written
// as at most log.rate_limit_per_s lines a second, with the rest counted in the log and in
// /metrics. The public development credentials: the embedded default serves them on loopback;
// on any other address wshubd refuses to start while one of them is in use (JWT secret, API
// key, moderation key), with one line naming what to set, unless --insecure-dev is given (then
// a loud warning). --check-config says the same, and a reload cannot bring them back.
// Servers bound to 0.0.0.0 here are only ever spoken to through 127.0.0.1, and stopped at once.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { BIN, start, freePort, SANITIZER } = require('./lib/server');
const { httpRequest, waitLog } = require('./lib/util');

const SECRETS = { WSHUB_JWT_SECRET: 'e2e-secret', WSHUB_API_KEY: 'e2e-api-key', WSHUB_MODERATION_KEYS: 'e2e-mod-key' };

// Runs wshubd to its exit (bounded) with only the given WSHUB_* variables.
function run(args, env) {
  const clean = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WSHUB_')) clean[k] = v;
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'wshub-e2e-dev-'));
  try {
    const r = spawnSync(BIN, args, { env: { ...clean, WSHUB_WORKERS: '1', ...env }, cwd, timeout: 20000, encoding: 'utf8' });
    if (r.error) throw r.error;
    assert.doesNotMatch(r.stderr, SANITIZER);
    return r;
  } finally {
    fs.rmSync(cwd, { recursive: true, force: true });
  }
}

const lines = (s) => s.split('\n').filter((l) => l.length > 0);

test('refuses the development credentials on a non-loopback address', { timeout: 60000 }, async (t) => {
  const port = await freePort();
  for (const listen of [`0.0.0.0:${port}`, `[::]:${port}`]) {
    for (const args of [[], ['--check-config']]) {
      await t.test(`${listen} ${args.join(' ')}`.trim(), () => {
        const r = run(args, { WSHUB_LISTEN: listen });
        t.diagnostic(r.stderr.trim());
        assert.equal(r.status, 1, r.stderr);
        assert.equal(r.stdout, '', 'no banner, no "configuration ok"');
        const err = lines(r.stderr);
        assert.equal(err.length, 1, `one line: ${r.stderr}`);
        assert.match(err[0], /^wshubd: refusing to listen on /);
        assert.ok(err[0].includes(listen), err[0]);
        for (const v of ['WSHUB_JWT_SECRET', 'WSHUB_API_KEY', 'WSHUB_MODERATION_KEYS', '--insecure-dev'])
          assert.ok(err[0].includes(v), `${v} named: ${err[0]}`);
      });
    }
  }
  await t.test('names only the credentials still in use', () => {
    const r = run([], { WSHUB_LISTEN: `0.0.0.0:${port}`, WSHUB_JWT_SECRET: 'x', WSHUB_MODERATION_KEYS: 'm' });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /\(api\.key\): set WSHUB_API_KEY /);
    assert.doesNotMatch(r.stderr, /WSHUB_JWT_SECRET|WSHUB_MODERATION_KEYS/);
  });
  await t.test('an RS/ES public key replaces the development JWT secret', () => {
    const { publicKey } = require('node:crypto').generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wshub-e2e-dev-'));
    const pem = path.join(dir, 'pub.pem');
    fs.writeFileSync(pem, publicKey.export({ type: 'spki', format: 'pem' }));
    try {
      const r = run(['--check-config'], { WSHUB_LISTEN: `0.0.0.0:${port}`, WSHUB_API_KEY: 'k', WSHUB_MODERATION_KEYS: 'm',
        WSHUB_AUTH_PUBLIC_KEY: pem, WSHUB_AUTH_ALGORITHMS: 'ES256' });
      assert.equal(r.status, 0, r.stderr);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  await t.test('loopback with the development credentials: --check-config is ok', () => {
    for (const listen of [`127.0.0.1:${port}`, `[::1]:${port}`, `localhost:${port}`]) {
      const r = run(['--check-config'], { WSHUB_LISTEN: listen });
      assert.equal(r.status, 0, `${listen}: ${r.stderr}`);
    }
  });
  await t.test('every credential configured: --check-config is ok on 0.0.0.0', () => {
    const r = run(['--check-config'], { WSHUB_LISTEN: `0.0.0.0:${port}`, ...SECRETS });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
  });
});

test('--insecure-dev starts on 0.0.0.0 with a loud warning', { timeout: 30000 }, async () => {
  const inst = await start({ listenHost: '0.0.0.0', args: ['--insecure-dev'] });
  try {
    const warn = /warn insecure_dev .*PUBLIC development credentials \(auth\.jwt_secret, api\.key, moderation\.keys\).*WSHUB_JWT_SECRET/.exec(inst.log());
    assert.ok(warn, inst.log());
    // The development key works, as the warning says.
    const r = await httpRequest(inst, { method: 'POST', path: '/api/publish', headers: { Authorization: 'Bearer wshub-development-api-key' },
      body: { channel: 'conversation:c1', event: 'chat_message', data: { content: 'x' } } });
    assert.equal(r.status, 200, r.text);
  } finally {
    await inst.teardown();
  }
});

test('configured credentials start on 0.0.0.0, and a reload cannot drop them', { timeout: 30000 }, async () => {
  const config = { auth: { jwt_secret: 'file-secret' }, api: { key: 'file-api-key' }, moderation: { keys: ['file-mod-key'] } };
  const inst = await start({ listenHost: '0.0.0.0', config });
  try {
    assert.doesNotMatch(inst.log(), /insecure_dev|development/);
    const publish = (key) => httpRequest(inst, { method: 'POST', path: '/api/publish', headers: { Authorization: `Bearer ${key}` },
      body: { channel: 'conversation:c1', event: 'chat_message', data: { content: 'x' } } });
    assert.equal((await publish('wshub-development-api-key')).status, 401);
    assert.equal((await publish('file-api-key')).status, 200);
    // A reload to a file without the API key would put the development key back: refused.
    fs.writeFileSync(path.join(inst.dir, 'wshub.json'), JSON.stringify({ auth: { jwt_secret: 'file-secret' }, moderation: { keys: ['file-mod-key'] } }));
    inst.child.kill('SIGHUP');
    await waitLog(inst, /error reload configuration rejected, keeping the running one: refusing .*\(api\.key\)/, 10000, 'the reload refused');
    assert.equal((await publish('wshub-development-api-key')).status, 401);
    assert.equal((await publish('file-api-key')).status, 200);
  } finally {
    await inst.teardown();
  }
});

test('log.rate_limit_per_s: a flood of refused requests is a few lines, and every one is counted', { timeout: 30000 }, async () => {
  const inst = await start({ env: { WSHUB_LOG_RATE_LIMIT_PER_S: '5' } });
  try {
    const N = 300;
    const http = require('node:http');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    await Promise.all(Array.from({ length: N }, () => httpRequest(inst, { path: '/no-such-endpoint', agent })
      .then((r) => assert.equal(r.status, 404))));
    agent.destroy();
    // The count of the last second reaches the log within a second or two (the main loop's flush).
    const counted = () => {
      const lines = inst.log().split('\n').filter((l) => / info http_refused /.test(l));
      const requests = lines.filter((l) => / conn=\d+ /.test(l));
      const suppressed = lines.reduce((a, l) => a + Number((/\((\d+) more suppressed in the last second\)/.exec(l) || [0, 0])[1]), 0);
      // The limit's seconds are monotonic ones: one may straddle two seconds of the timestamps.
      const seconds = new Set(requests.map((l) => l.slice(0, 19))).size;
      return { written: requests.length, suppressed, seconds };
    };
    const { waitFor } = require('./lib/util');
    const c = await waitFor(() => { const x = counted(); return x.written + x.suppressed === N ? x : null; }, 10000,
      `every refused request written or counted: ${JSON.stringify(counted())}`);
    assert.ok(c.written >= 1 && c.written <= 5 * (c.seconds + 1), `at most 5 lines per second were written: ${JSON.stringify(c)}`);
    const m = /^wshub_log_lines_suppressed_total (\d+)$/m.exec((await inst.get('/metrics')).body);
    assert.ok(m && Number(m[1]) >= c.suppressed, `wshub_log_lines_suppressed_total ${m && m[1]} >= ${c.suppressed}`);
  } finally {
    await inst.teardown();
  }
});
