'use strict';
// The helpers of the scale-out tests (issue 13) checked on their own: lib/redis.js starts a real
// redis-server that answers PING, refuses connections once stopped and answers again on the same
// port after a restart (the outage tests rely on it); lib/cluster.js starts several wshubd nodes
// at once. No broker is involved yet.
const { test } = require('node:test');
const assert = require('node:assert');

const { startRedis, command } = require('./lib/redis');
const { startNodes } = require('./lib/cluster');

test('lib/redis.js: start, PING, stop refuses, start again on the same port', async () => {
  const redis = await startRedis();
  try {
    assert.strictEqual(await redis.command(['PING']), 'PONG');
    assert.strictEqual(redis.url, `redis://127.0.0.1:${redis.port}/0`);
    // No persistence: nothing written to disk, whatever the tests do.
    assert.deepStrictEqual(await redis.command(['CONFIG', 'GET', 'save']), ['save', '']);
    assert.deepStrictEqual(await redis.command(['CONFIG', 'GET', 'appendonly']), ['appendonly', 'no']);
    assert.strictEqual(await redis.command(['SET', 'k', 'v']), 'OK');
    const err = await redis.command(['NOSUCHCOMMAND']);
    assert.ok(err instanceof Error && /unknown command/i.test(err.message), String(err));

    const info = await redis.stop();
    assert.ok(info && !redis.alive(), 'stopped');
    await assert.rejects(command(redis.port, ['PING'], { timeout: 500 }), (e) => e.code === 'ECONNREFUSED');
    assert.strictEqual(await redis.ping(), false);

    await redis.start();
    assert.strictEqual(await redis.command(['PING']), 'PONG');
    assert.strictEqual(await redis.command(['GET', 'k']), null, 'a restart starts empty');
    await redis.restart();
    assert.strictEqual(await redis.ping(), true);
  } finally {
    await redis.teardown();
  }
});

test('lib/cluster.js: two nodes without a broker, both ready', async () => {
  const cluster = await startNodes(2);
  try {
    const [a, b] = cluster.nodes;
    assert.notStrictEqual(a.port, b.port);
    for (const node of cluster.nodes) {
      const res = await node.get('/healthz');
      assert.strictEqual(res.status, 200, `node on ${node.port}`);
    }
  } finally {
    await cluster.teardown();
  }
});
