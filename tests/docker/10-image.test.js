'use strict';
// The wshub image (docker/Dockerfile): non-root, health check, configuration by environment and
// by a mounted file, JSON logs, the secure default, and `docker stop` during live connections.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  IMAGE, docker, dockerOk, freePort, runContainer, inspect, get, post, waitHealthz, jwt, client, waitFor,
} = require('./lib');

const SECRET = 'docker-test-jwt-secret';
const API_KEY = 'docker-test-api-key';
const ORIGIN = 'https://app.example.com';
const T = { timeout: 120000 };

function envFor(port, extra = {}) {
  return {
    WSHUB_LISTEN: `127.0.0.1:${port}`, WSHUB_JWT_SECRET: SECRET, WSHUB_API_KEY: API_KEY,
    WSHUB_MODERATION_KEYS: 'docker-test-mod-key', WSHUB_CABLE_ALLOWED_ORIGINS: ORIGIN, WSHUB_WORKERS: '2', ...extra,
  };
}

async function removeContainer(name) { await docker(['rm', '-f', name]); }

test('the image: size, user, entrypoint, EXPOSE and HEALTHCHECK are declared', T, async () => {
  const cfg = JSON.parse(await dockerOk(['image', 'inspect', '-f', '{{json .Config}}', IMAGE]));
  const size = Number(await dockerOk(['image', 'inspect', '-f', '{{.Size}}', IMAGE]));
  console.log(`# image ${IMAGE}: ${(size / 1e6).toFixed(1)} MB`);
  assert.equal(cfg.User, '10001:10001');
  assert.deepEqual(cfg.Entrypoint, ['/usr/bin/wshubd']);
  assert.ok(cfg.ExposedPorts && cfg.ExposedPorts['8080/tcp'], 'EXPOSE 8080');
  assert.ok(cfg.Healthcheck && cfg.Healthcheck.Test.join(' ').includes('wshub-healthcheck'), JSON.stringify(cfg.Healthcheck));
  assert.equal(cfg.StopSignal, 'SIGTERM');
  assert.ok(size < 150e6, `image is ${size} bytes`);
});

test('configured by WSHUB_* env: runs as non-root as PID 1, the health check turns healthy, JSON logs', T, async (t) => {
  const port = await freePort();
  const name = `wshub-test-env-${port}`;
  t.after(() => removeContainer(name));
  await runContainer({ name, env: envFor(port, { WSHUB_LOG_FORMAT: 'json' }), dockerArgs: ['--health-interval=1s', '--health-start-period=1s'] });
  await waitHealthz(port);
  // The health check of the image (its own command, only run more often) says healthy.
  await waitFor(async () => (await inspect(name, '{{.State.Health.Status}}')) === 'healthy', 20000, 'healthy', 250);
  const status = await dockerOk(['exec', name, 'cat', '/proc/1/status']);
  const uid = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
  assert.ok(uid, status);
  assert.equal(uid[1], '10001', 'real uid of PID 1');
  assert.equal(uid[2], '10001', 'effective uid of PID 1');
  assert.match(await dockerOk(['exec', name, 'cat', '/proc/1/cmdline']), /^\/usr\/bin\/wshubd/);
  // A shell for debugging is there.
  assert.equal(await dockerOk(['exec', name, 'bash', '-c', 'echo ok']), 'ok');
  const logs = await docker(['logs', name]);
  const lines = (logs.stdout + logs.stderr).split('\n').filter(Boolean);
  assert.ok(lines.length > 0, 'some log lines');
  for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `not JSON: ${l}`);
  assert.ok(lines.some((l) => JSON.parse(l).event === 'listening' || /listening/.test(l)), lines.join('\n'));
});

test('the health check turns unhealthy when /healthz does not answer on its port', T, async (t) => {
  // A health check on the wrong port must fail: proves it really probes.
  const port = await freePort();
  const name = `wshub-test-unhealthy-${port}`;
  t.after(() => removeContainer(name));
  await runContainer({ name, env: envFor(port, { WSHUB_HEALTHCHECK_PORT: String(await freePort()) }),
    dockerArgs: ['--health-interval=1s', '--health-retries=2', '--health-start-period=1s'] });
  await waitHealthz(port);
  await waitFor(async () => (await inspect(name, '{{.State.Health.Status}}')) === 'unhealthy', 20000, 'unhealthy', 250);
});

test('configured by a file mounted over /etc/wshub/wshub.json; WSHUB_* still overrides it', T, async (t) => {
  const port = await freePort();
  const name = `wshub-test-file-${port}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wshub-docker-'));
  const file = path.join(dir, 'wshub.json');
  fs.writeFileSync(file, JSON.stringify({ listen: `127.0.0.1:${port}`, api: { key: 'from-the-file' }, auth: { jwt_secret: SECRET } }));
  fs.chmodSync(file, 0o644);
  t.after(async () => { await removeContainer(name); fs.rmSync(dir, { recursive: true, force: true }); });
  await runContainer({ name, env: { WSHUB_HEALTHCHECK_PORT: String(port), WSHUB_API_KEY: 'from-the-env' },
    dockerArgs: ['-v', `${file}:/etc/wshub/wshub.json:ro`, '--health-interval=1s', '--health-start-period=1s'] });
  await waitHealthz(port);
  const body = { channel: 'conversation:c1', event: 'e', data: {} };
  assert.equal((await post(port, '/api/publish', body, { Authorization: 'Bearer from-the-file' })).status, 401);
  assert.equal((await post(port, '/api/publish', body, { Authorization: 'Bearer from-the-env' })).status, 200);
  await waitFor(async () => (await inspect(name, '{{.State.Health.Status}}')) === 'healthy', 20000, 'healthy', 250);
});

test('the image default (0.0.0.0) refuses the public development credentials with one line and exit 1', T, async () => {
  const port = await freePort();
  const r = await docker(['run', '--rm', '--network', 'host', '-e', `WSHUB_LISTEN=0.0.0.0:${port}`, IMAGE], { timeout: 30000 });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0:\d+ \(not loopback\)/);
});

test('docker stop during live connections: every client gets its goodbye and close 1001, exit 0 within the grace period', T, async (t) => {
  const port = await freePort();
  const name = `wshub-test-stop-${port}`;
  t.after(() => removeContainer(name));
  await runContainer({ name, env: envFor(port) });
  await waitHealthz(port);
  const base = `ws://127.0.0.1:${port}`;
  const echo = Array.from({ length: 20 }, () => client(`${base}/echo`));
  const service = Array.from({ length: 10 }, (_, i) => client(`${base}/api/ws?token=${jwt({ sub: `user-${i}` }, SECRET)}`));
  const cable = Array.from({ length: 10 }, (_, i) => client(`${base}/cable?token=${jwt({ sub: String(100 + i), community_member_id: 100 + i }, SECRET)}`,
    { headers: { Origin: ORIGIN }, protocols: ['actioncable-v1-json', 'actioncable-unsupported'] }));
  const all = [...echo, ...service, ...cable];
  await Promise.all(all.map((c) => c.opened));
  for (const c of service) {
    c.send({ type: 'subscribe', data: { channel: 'conversation:stop' } });
    await c.next((m) => m.type === 'subscribed');
  }
  for (const c of cable) await c.next((m) => m.type === 'welcome');
  for (const c of echo) {
    c.send('still here');
    await c.next((m) => m === 'still here');
  }
  const started = Date.now();
  const stop = await docker(['stop', '-t', '10', name], { timeout: 30000 });
  const took = Date.now() - started;
  assert.equal(stop.code, 0, stop.stderr);
  const closes = await Promise.all(all.map((c) => c.closedWith()));
  closes.forEach((cl, i) => assert.equal(cl.code, 1001, `client ${i}: ${JSON.stringify(cl)}`));
  for (const c of cable) {
    const bye = await c.next((m) => m.type === 'disconnect', 1000, 'the cable goodbye');
    assert.deepEqual(bye, { type: 'disconnect', reason: 'server_restart', reconnect: true });
  }
  assert.equal(await inspect(name, '{{.State.ExitCode}}'), '0');
  assert.equal(await inspect(name, '{{.State.OOMKilled}}'), 'false');
  assert.ok(took < 10000, `docker stop took ${took} ms (grace 10 s: the daemon was killed)`);
  const logs = await docker(['logs', name]);
  assert.match(logs.stdout + logs.stderr, /every connection closed, exiting/);
  console.log(`# docker stop with ${all.length} live connections: ${took} ms`);
});
