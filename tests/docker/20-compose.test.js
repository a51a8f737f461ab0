'use strict';
// docker/compose.yml: Redis, two wshub nodes on the Redis broker, HAProxy in front, started with
// `docker-compose up -d` on free loopback ports; and docker/compose.mock.yml. API B clients and
// publishes go through the load balancer only; its X-Wshub-Node header says which node answered.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { ROOT, IMAGE, BASE, run, docker, freePort, get, post, jwt, client, waitFor, sleep, within } = require('./lib');

const SECRET = 'compose-test-jwt-secret';
const API_KEY = 'compose-test-api-key';
const PREFIX = process.env.WSHUB_COMPOSE_PROJECT_PREFIX || 'wshubtestmanual';
const T = { timeout: 600000 };

function compose(project, file, args, env, timeout = 600000) {
  return run('docker-compose', ['-p', project, '-f', path.join(ROOT, 'docker', file), ...args], { env, timeout });
}

async function composeOk(project, file, args, env, timeout) {
  const r = await compose(project, file, args, env, timeout);
  if (r.code !== 0) throw new Error(`docker-compose ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr.slice(-3000)}`);
  return r;
}

async function startCluster(t) {
  const ports = { lb: await freePort(), n1: await freePort(), n2: await freePort(), redis: await freePort() };
  const env = {
    WSHUB_IMAGE: IMAGE, WSHUB_BASE_IMAGE: BASE, WSHUB_LB_PORT: String(ports.lb), WSHUB_LB_BIND: '127.0.0.1',
    WSHUB_NODE1_PORT: String(ports.n1), WSHUB_NODE2_PORT: String(ports.n2), WSHUB_REDIS_PORT: String(ports.redis),
    WSHUB_PUBLIC_URL: `http://127.0.0.1:${ports.lb}`, WSHUB_JWT_SECRET: SECRET, WSHUB_API_KEY: API_KEY,
    WSHUB_MODERATION_KEYS: 'compose-test-mod-key',
  };
  const project = `${PREFIX}cluster`;
  t.after(async () => {
    if (t.passed === false) {
      const logs = await compose(project, 'compose.yml', ['logs', '--no-color', '--tail', '40'], env, 60000);
      console.log(logs.stdout.split('\n').map((l) => `# ${l}`).join('\n'));
    }
    await compose(project, 'compose.yml', ['down', '-v', '-t', '5'], env, 120000);
  });
  const started = Date.now();
  await composeOk(project, 'compose.yml', ['up', '-d'], env);
  // Ready: the load balancer answers and sends requests to both nodes (health checks passed).
  const seen = new Set();
  await waitFor(async () => {
    const r = await get(ports.lb, '/readyz').catch(() => null);
    if (r && r.status === 200 && r.headers['x-wshub-node']) seen.add(r.headers['x-wshub-node']);
    return seen.size === 2;
  }, 60000, 'both nodes answering through the load balancer', 200);
  console.log(`# compose up -d to both nodes ready: ${Date.now() - started} ms`);
  return { ports, env, project };
}

const token = (sub) => jwt({ sub }, SECRET);
const auth = { Authorization: `Bearer ${API_KEY}` };

// A service (API B) client through the load balancer, subscribed to channel; .node = its node.
async function subscriber(port, sub, channel) {
  const c = client(`ws://127.0.0.1:${port}/api/ws?token=${token(sub)}`);
  await c.opened;
  c.node = c.upgradeHeaders['x-wshub-node'];
  c.send({ type: 'subscribe', data: { channel } });
  await c.next((m) => m.type === 'subscribed');
  return c;
}

// Publishes through the load balancer until a node answers 200 (a node going away refuses or
// resets); resolves the node that took it.
async function publish(port, channel, data) {
  for (let i = 0; i < 50; i++) {
    const r = await post(port, '/api/publish', { channel, event: 'seq', data }, auth).catch(() => null);
    if (r && r.status === 200) return r.headers['x-wshub-node'];
    await sleep(50);
  }
  throw new Error(`no node accepted the publish of ${JSON.stringify(data)}`);
}

test('compose cluster: an event published through the load balancer on one node reaches a client on the other; a stopped node\'s clients move to the other and the survivors lose nothing', T, async (t) => {
  const { ports, env, project } = await startCluster(t);
  const lb = ports.lb;

  // 1. Cross-node delivery.
  const a = await subscriber(lb, 'alice', 'conversation:x');
  assert.ok(['node1', 'node2'].includes(a.node), `X-Wshub-Node: ${a.node}`);
  let landed = null;
  for (let i = 0; i < 10 && landed !== (a.node === 'node1' ? 'node2' : 'node1'); i++) {
    const r = await post(lb, '/api/publish', { channel: 'conversation:x', event: 'hello', data: { i } }, auth);
    assert.equal(r.status, 200, r.text);
    landed = r.headers['x-wshub-node'];
    if (landed !== a.node) {
      const ev = await a.next((m) => m.type === 'hello' && m.data.i === i, 5000, 'the event published on the other node');
      assert.deepEqual(ev.data, { i });
    }
  }
  assert.notEqual(landed, a.node, 'a publish never landed on the other node');
  a.ws.close();

  // 2. Eight subscribers, spread over both nodes by the load balancer; a publisher numbering
  //    its events through the load balancer all along.
  const subs = [];
  for (let i = 0; i < 8; i++) subs.push(await subscriber(lb, `user-${i}`, 'conversation:seq'));
  const victim = subs[0].node;
  const survivor = victim === 'node1' ? 'node2' : 'node1';
  const moved = subs.filter((c) => c.node === victim);
  const stayed = subs.filter((c) => c.node === survivor);
  assert.ok(moved.length > 0 && stayed.length > 0, `clients on both nodes: ${subs.map((c) => c.node)}`);
  const acked = [];
  let seq = 0;
  let publishing = true;
  const publisher = (async () => {
    while (publishing) {
      const n = ++seq;
      await publish(lb, 'conversation:seq', { n });
      acked.push(n);
      await sleep(10);
    }
  })();
  await waitFor(() => acked.length >= 20, 10000, '20 publishes before the stop');

  const stopped = Date.now();
  const r = await compose(project, 'compose.yml', ['stop', '-t', '10', victim], env, 60000);
  assert.equal(r.code, 0, r.stderr);
  const stopMs = Date.now() - stopped;
  for (const c of moved) assert.equal((await c.closedWith()).code, 1001, 'the stopped node\'s clients get 1001');
  const exit = (await docker(['inspect', '-f', '{{.State.ExitCode}}', `${project}_${victim}_1`])).stdout.trim();
  assert.equal(exit, '0', 'the stopped node exited 0');

  // Its clients reconnect through the load balancer: they land on the survivor.
  const back = [];
  for (let i = 0; i < moved.length; i++) back.push(await subscriber(lb, `back-${i}`, 'conversation:seq'));
  for (const c of back) assert.equal(c.node, survivor, 'a reconnecting client lands on the surviving node');
  const fence = acked.length + 20;
  await waitFor(() => acked.length >= fence, 15000, '20 more publishes after the reconnects');
  publishing = false;
  await within(publisher, 15000, 'the publisher');
  const last = acked[acked.length - 1];

  // The survivor's clients: every acknowledged event, once each, in order, none lost.
  for (const c of stayed) {
    const got = [];
    while (!got.length || got[got.length - 1] < last) {
      const m = await c.next((x) => x.type === 'seq', 10000, `event ${last} on a surviving client (got up to ${got[got.length - 1]})`);
      got.push(m.data.n);
    }
    const ackedSet = new Set(acked);
    const missing = acked.filter((n) => !got.includes(n));
    assert.deepEqual(missing, [], 'acknowledged events a surviving client did not get');
    for (let i = 1; i < got.length; i++) assert.ok(got[i] > got[i - 1], `out of order or twice: ${got[i - 1]} then ${got[i]}`);
    assert.ok(got.every((n) => ackedSet.has(n)), 'an event that no node acknowledged');
  }
  // The moved clients get what is published after their resubscribe.
  const after = await publish(lb, 'conversation:seq', { n: 'after' });
  assert.equal(after, survivor);
  for (const c of back) await c.next((m) => m.type === 'seq' && m.data.n === 'after', 5000, 'an event after moving');
  console.log(`# ${victim} stopped in ${stopMs} ms; ${moved.length} clients moved, ${stayed.length} stayed and got all ${acked.length} events`);
  [...subs, ...back].forEach((c) => c.ws.close());
});

test('compose.mock.yml: one node on the embedded development configuration, with its banner and token', T, async (t) => {
  const port = await freePort();
  const env = { WSHUB_IMAGE: IMAGE, WSHUB_BASE_IMAGE: BASE, WSHUB_MOCK_PORT: String(port) };
  const project = `${PREFIX}mock`;
  t.after(() => compose(project, 'compose.mock.yml', ['down', '-v', '-t', '5'], env, 120000));
  await composeOk(project, 'compose.mock.yml', ['up', '-d'], env);
  await waitFor(() => get(port, '/healthz').then((r) => r.status === 200, () => false), 30000, 'the mock node', 200);
  // The banner's token works against API B.
  let tok = null;
  await waitFor(async () => {
    const logs = await compose(project, 'compose.mock.yml', ['logs', '--no-color'], env, 30000);
    tok = /development token[^\n]*\n[^\n]*?(ey[\w-]+\.[\w-]+\.[\w-]+)/.exec(logs.stdout);
    return tok;
  }, 10000, 'the banner with the development token');
  const c = client(`ws://127.0.0.1:${port}/api/ws?token=${tok[1]}`);
  await c.opened;
  c.send({ type: 'ping' });
  assert.equal((await c.next((m) => m.type === 'pong')).type, 'pong');
  c.ws.close();
});
