'use strict';
// Mock scenarios (issue 15): JSON files of timed steps, started with --scenario FILE or
// POST /api/scenarios, listed and stopped through the API. Real clients (ws) receive what
// the steps publish; placeholders, saved values, loops, failures and bounds are checked.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');

const { start, ROOT } = require('./lib/server');
const { waitFor, httpRequest } = require('./lib/util');

const T = { timeout: 60000 };
const SECRET = 'scenario-secret';
const KEY = 'scenario-api-key';
const ENV = { WSHUB_JWT_SECRET: SECRET, WSHUB_API_KEY: KEY, WSHUB_MOCK_SCENARIO_DIR: path.join(ROOT, 'config', 'scenarios') };

function token(sub) {
  const b64u = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${input}.${crypto.createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

// An API B client subscribed to channel; .events collects the events.
async function subscriber(srv, channel) {
  const ws = new WebSocket(`${srv.wsUrl}/api/ws?token=${token('watcher')}`);
  const c = { ws, events: [] };
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const subscribed = new Promise((resolve) => ws.on('message', (raw) => {
    const m = JSON.parse(raw);
    if (m.type === 'subscribed') resolve();
    else if (m.type !== 'pong') c.events.push(m);
  }));
  ws.send(JSON.stringify({ type: 'subscribe', data: { channel } }));
  await subscribed;
  return c;
}

const api = (srv, method, p, body, key = KEY) => httpRequest(srv, {
  method, path: p, headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
  body: body === undefined ? undefined : JSON.stringify(body),
});

async function scenario(srv, id) {
  const r = await api(srv, 'GET', '/api/scenarios');
  assert.equal(r.status, 200, r.text);
  return r.json.scenarios.find((s) => s.id === id);
}

test('--scenario FILE runs once listening: the example service scenario reaches a real API B client, in order', T, async () => {
  const srv = await start({ env: ENV, args: ['--scenario', path.join(ROOT, 'config', 'scenarios', 'service.json')] });
  try {
    const c = await subscriber(srv, 'conversation:conv-123');
    await waitFor(() => c.events.filter((e) => e.type === 'chat_message').length >= 2, 8000, 'two chat messages');
    const chats = c.events.filter((e) => e.type === 'chat_message');
    const idx = chats.map((e) => Number(/message (\d+) of pass/.exec(e.data.content)[1]));
    for (let i = 1; i < idx.length; i++) assert.ok(idx[i] === idx[i - 1] + 1 || idx[i] === 0, `in order: ${idx}`);
    assert.equal(chats[0].data.conversation_id, 'conv-123');
    assert.match(chats[0].data.sent_at, /^\d{4}-\d\d-\d\dT/);
    const list = (await api(srv, 'GET', '/api/scenarios')).json.scenarios;
    assert.equal(list.length, 1);
    assert.equal(list[0].state, 'running');
    assert.equal(list[0].name, 'service: a lively conversation');
    c.ws.close();
  } finally {
    await srv.teardown();
  }
});

// A cable client of member (raw Action Cable over ws) subscribed to its ChatRoomChannel; .broadcasts
// collects what the channel receives.
async function cableMember(srv, member) {
  const tok = (() => {
    const b64u = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const input = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u({ sub: String(member), community_member_id: member, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
    return `${input}.${crypto.createHmac('sha256', SECRET).update(input).digest('base64url')}`;
  })();
  const ws = new WebSocket(`${srv.wsUrl}/cable`, ['actioncable-v1-json'], { headers: { Authorization: `Bearer ${tok}` } });
  const identifier = JSON.stringify({ channel: 'ChatRoomChannel', community_member_id: member });
  const c = { ws, broadcasts: [] };
  await new Promise((resolve, reject) => {
    ws.on('message', (raw) => {
      const m = JSON.parse(raw);
      if (m.type === 'welcome') ws.send(JSON.stringify({ command: 'subscribe', identifier }));
      else if (m.type === 'confirm_subscription') resolve();
      else if (m.type === 'reject_subscription') reject(new Error('rejected'));
      else if (m.type === undefined && m.message) c.broadcasts.push(m.message);
    });
    ws.once('error', reject);
  });
  return c;
}

test('the example scenarios run end to end: cable.json drives Circle (a real cable client gets newMessage), moderation.json sets an override and sees it applied', T, async () => {
  const srv = await start({ env: ENV });
  try {
    const c = await cableMember(srv, 42);
    const r = await api(srv, 'POST', '/api/scenarios', { file: 'cable.json' });
    assert.equal(r.status, 202, r.text);
    await waitFor(() => c.broadcasts.some((b) => b.event === 'newMessage'), 8000, 'a newMessage on member 42\'s ChatRoomChannel');
    const msg = c.broadcasts.find((b) => b.event === 'newMessage');
    assert.match(JSON.stringify(msg.data), /message 0 from Ada/);
    const m = await api(srv, 'POST', '/api/scenarios', { file: 'moderation.json' });
    assert.equal(m.status, 202);
    await waitFor(async () => (await scenario(srv, m.json.id)).state === 'done', 5000, 'moderation.json done');
    assert.match(srv.log(), /free money: delete/);
    assert.match(srv.log(), /hello world: pass/);
    assert.equal((await scenario(srv, r.json.id)).state, 'running');
    c.ws.close();
  } finally {
    await srv.teardown();
  }
});

test('POST /api/scenarios: placeholders keep their type, saved values feed later steps, repeat rounds count from 0; DELETE stops one', T, async () => {
  const srv = await start({ env: ENV });
  try {
    const c = await subscriber(srv, 'conversation:scn');
    const doc = {
      name: 'inline',
      vars: { n0: 5, who: 'ada' },
      steps: [
        // An answer to save from: POST /api/publish says {ok, delivered}.
        { request: { method: 'POST', path: '/api/publish', body: { channel: 'conversation:scn', event: 'status_update', data: { k: '${n0}' } } },
          save: { got: 'delivered' } },
        { repeat: 3, steps: [{ publish: { channel: 'conversation:scn', event: 'chat_message', data: { round: '${i}', text: '${who} #${i}', delivered_before: '${got}' } } }] },
        { log: 'done with ${who}' },
      ],
    };
    const r = await api(srv, 'POST', '/api/scenarios', { scenario: doc });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.json.name, 'inline');
    await waitFor(() => c.events.length === 4, 5000, 'the four events');
    assert.deepEqual(c.events[0].data, { k: 5 }, 'a lone placeholder keeps its type');
    assert.deepEqual(c.events.slice(1).map((e) => e.data), [0, 1, 2].map((i) => ({ round: i, text: `ada #${i}`, delivered_before: 1 })));
    await waitFor(async () => (await scenario(srv, r.json.id)).state === 'done', 3000, 'done');
    assert.equal((await scenario(srv, r.json.id)).requests, 4);
    assert.match(srv.log(), /scenario .*done with ada/);

    // One that loops until stopped.
    const r2 = await api(srv, 'POST', '/api/scenarios', { scenario: { loop: true, steps: [{ wait_ms: 20 }, { publish: { channel: 'conversation:scn', event: 'tick', data: {} } }] } });
    assert.equal(r2.status, 202);
    await waitFor(() => c.events.filter((e) => e.type === 'tick').length >= 3, 5000, 'ticks');
    assert.equal((await api(srv, 'DELETE', `/api/scenarios/${r2.json.id}`)).status, 200);
    await waitFor(async () => (await scenario(srv, r2.json.id)).state === 'stopped', 3000, 'stopped');
    const ticks = c.events.filter((e) => e.type === 'tick').length;
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(c.events.filter((e) => e.type === 'tick').length, ticks, 'nothing after the stop');
    assert.equal((await api(srv, 'DELETE', '/api/scenarios/999')).status, 404);
    c.ws.close();
  } finally {
    await srv.teardown();
  }
});

test('a failing step ends its scenario with the answer that failed it; every malformed document is refused naming the field', T, async () => {
  const srv = await start({ env: ENV });
  try {
    const r = await api(srv, 'POST', '/api/scenarios', { scenario: { steps: [
      { publish: { channel: 'conversation:x', event: 'e', data: {} } },
      { publish: { channel: '', event: 'e', data: {} } },
      { log: 'never' }] } });
    assert.equal(r.status, 202);
    await waitFor(async () => (await scenario(srv, r.json.id)).state === 'failed', 3000, 'failed');
    const s = await scenario(srv, r.json.id);
    assert.match(s.error, /answered 400/);
    assert.equal(s.requests, 2);
    assert.doesNotMatch(srv.log(), /never/);

    // Placeholders cannot multiply a value without a bound: 30 × 100 KB in one step fails it.
    const big = await api(srv, 'POST', '/api/scenarios', { scenario: { vars: { big: 'x'.repeat(100000) },
      steps: [{ publish: { channel: 'conversation:x', event: 'e', data: { t: '${big}'.repeat(30) } } }] } });
    assert.equal(big.status, 202, big.text);
    await waitFor(async () => (await scenario(srv, big.json.id)).state === 'failed', 3000, 'the oversized step failed');
    assert.match((await scenario(srv, big.json.id)).error, /more than 2097152 bytes/);
    assert.equal((await scenario(srv, big.json.id)).requests, 0);

    const bad = [
      [{}, 'file'],
      [{ file: '../etc/passwd' }, 'file'],
      [{ file: 'nope.json' }, 'file'],
      [{ scenario: { steps: [] } }, 'scenario', /steps: expected an array/],
      [{ scenario: { steps: [{ wait_ms: -1 }] } }, 'scenario', /steps\[0\]: wait_ms/],
      [{ scenario: { steps: [{ publish: {}, log: 'x' }] } }, 'scenario', /exactly one/],
      [{ scenario: { steps: [{ repeat: 2, steps: [{ request: { method: 'GET', path: 'no-slash' } }] }] } }, 'scenario', /steps\[0\]\.steps\[0\]\.request/],
      [{ scenario: { loop: true, steps: [{ log: 'spin' }] } }, 'scenario', /at least 10 ms/],
      [{ scenario: { steps: [{ repeat: true, steps: [{ log: 'spin' }] }] } }, 'scenario', /at least 10 ms/],
      [{ scenario: { steps: [{ request: { method: 'GET', path: '/x', headers: { 'a\r\nb': 'c' } } }] } }, 'scenario', /headers/],
    ];
    for (const [body, field, re] of bad) {
      const b = await api(srv, 'POST', '/api/scenarios', body);
      assert.equal(b.status, 400, `${JSON.stringify(body)}: ${b.text}`);
      assert.equal(b.json.field, field, b.text);
      if (re) assert.match(b.json.message, re);
    }
    const nj = await httpRequest(srv, { method: 'POST', path: '/api/scenarios', headers: { Authorization: `Bearer ${KEY}` }, body: '{not json' });
    assert.equal(nj.status, 400);
    assert.equal(nj.json.field, '(body)');
    assert.equal((await api(srv, 'GET', '/api/scenarios', undefined, 'wrong')).status, 401);
  } finally {
    await srv.teardown();
  }
});

test('more scenarios queued at once than the runner starts in one turn all start', T, async () => {
  const srv = await start({ env: { ...ENV, WSHUB_MOCK_MAX_SCENARIOS: '200' } });
  try {
    const long = { scenario: { steps: [{ wait_ms: 60000 }] } };
    const answers = await Promise.all(Array.from({ length: 150 }, () => api(srv, 'POST', '/api/scenarios', long)));
    assert.ok(answers.every((r) => r.status === 202));
    await waitFor(async () => {
      const list = (await api(srv, 'GET', '/api/scenarios')).json.scenarios;
      return list.length === 150 && list.every((x) => x.state === 'running');
    }, 5000, 'every scenario running, none left queued');
    assert.equal((await api(srv, 'POST', '/api/reset', {})).status, 200);
  } finally {
    await srv.teardown();
  }
});

test('mock.max_scenarios bounds the running scenarios; the example files all load; mock.enabled false hides the endpoints', T, async () => {
  const srv = await start({ env: { ...ENV, WSHUB_MOCK_MAX_SCENARIOS: '2' } });
  try {
    const loop = { scenario: { loop: true, steps: [{ wait_ms: 1000 }] } };
    assert.equal((await api(srv, 'POST', '/api/scenarios', loop)).status, 202);
    assert.equal((await api(srv, 'POST', '/api/scenarios', loop)).status, 202);
    const third = await api(srv, 'POST', '/api/scenarios', loop);
    assert.equal(third.status, 503);
    assert.match(third.json.message, /mock.max_scenarios/);
    // The two start on the main thread's loop a moment after they were queued.
    await waitFor(async () => /^wshub_mock_scenarios 2$/m.test((await srv.get('/metrics')).body), 3000,
      'wshub_mock_scenarios 2');
    // POST /api/reset stops every scenario: room for new ones again.
    assert.equal((await api(srv, 'POST', '/api/reset', {})).status, 200);
    await waitFor(async () => (await api(srv, 'GET', '/api/scenarios')).json.scenarios.every((s) => s.state === 'stopped'),
      3000, 'every scenario stopped by the reset');
    assert.equal((await api(srv, 'POST', '/api/scenarios', loop)).status, 202);
  } finally {
    await srv.teardown();
  }
  for (const f of fs.readdirSync(path.join(ROOT, 'config', 'scenarios'))) {
    const { spawnSync } = require('node:child_process');
    const { BIN } = require('./lib/server');
    const r = spawnSync(BIN, ['--check-config', '--scenario', path.join(ROOT, 'config', 'scenarios', f)], { encoding: 'utf8', env: { ...process.env, ...ENV } });
    assert.equal(r.status, 0, `${f}: ${r.stderr}`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wshub-scn-'));
  const badFile = path.join(dir, 'bad.json');
  fs.writeFileSync(badFile, JSON.stringify({ steps: [{ wait_ms: 'soon' }] }));
  const { spawnSync } = require('node:child_process');
  const { BIN } = require('./lib/server');
  const r = spawnSync(BIN, ['--check-config', '--scenario', badFile], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /steps\[0\]: wait_ms/);
  const off = await start({ env: ENV, config: { mock: { enabled: false } } });
  try {
    const r2 = await api(off, 'GET', '/api/scenarios');
    assert.equal(r2.status, 404);
    assert.match(r2.json.message, /mock backend is off/);
  } finally {
    await off.teardown();
  }
});
