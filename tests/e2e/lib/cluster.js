'use strict';
// Several wshubd nodes for one test file (issue 13's scale-out tests): each a lib/server.js
// instance on its own free port, all with the same JWT secret and API key, so that a token or
// a publish valid on one node is valid on every node. brokerEnv(redis) gives the variables that
// put them on a lib/redis.js server.
const { start } = require('./server');
const { waitFor } = require('./util');

const JWT_SECRET = 'cluster-secret';
const API_KEY = 'cluster-api-key';

// Variables that make a node use the Redis broker of a lib/redis.js handle.
function brokerEnv(redis, extra = {}) {
  return { WSHUB_BROKER: 'redis', WSHUB_REDIS_URL: redis.url, ...extra };
}

// Starts n nodes at once; opts are lib/server.js start()'s, opts.env is added to every node's.
// With the Redis broker, waits until every node's /readyz says its link is up (ready: false
// does not). Resolves { nodes, jwtSecret, apiKey, teardown() }; if one node fails to start,
// the others are stopped and the first failure is thrown.
async function startNodes(n, { env = {}, ready = true, ...opts } = {}) {
  const nodeEnv = { WSHUB_JWT_SECRET: JWT_SECRET, WSHUB_API_KEY: API_KEY, ...env };
  const results = await Promise.allSettled(Array.from({ length: n }, () => start({ ...opts, env: nodeEnv })));
  const nodes = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  const failed = results.find((r) => r.status === 'rejected');
  let failure = failed && failed.reason;
  if (!failure && ready && nodeEnv.WSHUB_BROKER === 'redis') {
    try {
      await Promise.all(nodes.map((node) => waitFor(async () => (await node.get('/readyz')).status === 200,
        10000, `node ${node.port}: /readyz 200 (the link to Redis up)`)));
    } catch (e) {
      failure = e;
    }
  }
  if (failure) {
    await Promise.allSettled(nodes.map((node) => node.stop(2000)));
    throw failure;
  }
  return {
    nodes,
    jwtSecret: nodeEnv.WSHUB_JWT_SECRET,
    apiKey: nodeEnv.WSHUB_API_KEY,
    // Tears every node down (each checks its exit and its log) and throws the first failure.
    async teardown() {
      const r = await Promise.allSettled(nodes.map((node) => node.teardown()));
      const bad = r.find((x) => x.status === 'rejected');
      if (bad) throw bad.reason;
    },
  };
}

module.exports = { startNodes, brokerEnv, JWT_SECRET, API_KEY };
