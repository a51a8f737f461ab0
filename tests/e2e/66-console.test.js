'use strict';
// The web console (issue 16): /console, served by wshubd from the files it embeds, driven in
// headless Chromium (playwright-core, Debian's /usr/bin/chromium) against a real
// @rails/actioncable consumer running here under Node:
//  - the pages: byte for byte web/console/, their types, a Content-Security-Policy without
//    inline script; the page loads with no error and no CSP violation;
//  - sign-in by keyboard alone: a wrong key is refused and shows nothing, the right one shows
//    the console; the key never appears in a URL the page requests;
//  - the consumer's connection appears with its member and subscriptions, and its channels;
//  - an event published through the console's form reaches the consumer;
//  - the Kick button closes it with server_restart/reconnect, and the consumer comes back by
//    itself as a new connection, which the console lists;
//  - the tail shows the consumer's frames (in and out) from the traffic tap;
//  - a fault and a Circle action set through the console's forms, the Circle event received;
//    a scenario started from its file and stopped;
//  - every endpoint the console reads or drives answers 401 without data to a missing or
//    wrong key; /api/info masks the secrets of the configuration.
// Environment: WSHUB_BIN (the binary under test), CHROMIUM_PATH (default /usr/bin/chromium).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const WebSocket = require('ws');
const ActionCable = require('@rails/actioncable');

const { start, ROOT } = require('./lib/server');
const { waitFor, httpRequest } = require('./lib/util');

const KEY = `console-e2e-${crypto.randomBytes(8).toString('hex')}`;
const JWT_SECRET = `console-e2e-secret-${crypto.randomBytes(8).toString('hex')}`;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const T = { timeout: 120000 };
const MEMBER = 31000 + (process.pid % 1000);

let srv;
before(async () => {
  // The embedded default (mock.enabled on), with a key and a JWT secret of its own so that the
  // test can check they are masked; cable pings every 500 ms so the consumer notices a dead
  // socket fast.
  srv = await start({ env: { WSHUB_WORKERS: '2', WSHUB_API_KEY: KEY, WSHUB_JWT_SECRET: JWT_SECRET,
    WSHUB_CABLE_PING_INTERVAL_MS: '500', WSHUB_MOCK_SCENARIO_DIR: path.join(ROOT, 'config', 'scenarios') } });
});
after(async () => { if (srv) await srv.teardown(); });

const api = (method, p, body, key = KEY) => httpRequest(srv, { method, path: p, body, headers: key ? { Authorization: `Bearer ${key}` } : {} });

// ------------------------------------------------------------------ the pages

test('GET /console serves the embedded files with their types and a strict CSP', T, async () => {
  const files = [['/console', 'index.html', /^text\/html/], ['/console/', 'index.html', /^text\/html/],
    ['/console/console.js', 'console.js', /^text\/javascript/], ['/console/console.css', 'console.css', /^text\/css/]];
  for (const [p, file, type] of files) {
    const r = await httpRequest(srv, { path: p, parse: (t) => t });
    assert.equal(r.status, 200, p);
    assert.match(r.headers['content-type'], type, p);
    assert.equal(r.text, fs.readFileSync(path.join(ROOT, 'web', 'console', file), 'utf8'), `${p} is web/console/${file}`);
    const csp = r.headers['content-security-policy'];
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/, 'scripts of the origin only: no inline script, no eval');
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
  }
  const html = fs.readFileSync(path.join(ROOT, 'web', 'console', 'index.html'), 'utf8');
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
  assert.doesNotMatch(html, /\son[a-z]+=/i, 'no inline event handler');
  assert.doesNotMatch(html, /https?:\/\//, 'nothing from another origin (no CDN)');
  assert.equal((await srv.get('/console/nope.js')).status, 404);
  assert.equal((await api('POST', '/console', {})).status, 405);
});

// ------------------------------------------------------------------ the key

test('every endpoint of the console refuses a missing or wrong key, without data', T, async () => {
  const endpoints = [
    ['GET', '/api/info'], ['GET', '/api/metrics'], ['GET', '/api/connections'], ['GET', '/api/connections/1'], ['GET', '/api/channels'],
    ['POST', '/api/publish', { channel: 'x:y', event: 'e', data: {} }], ['POST', '/api/connections/1/close', {}],
    ['POST', '/api/connections/1/send', { text: 'x' }], ['POST', '/api/send', { text: 'x' }], ['POST', '/api/close', {}],
    ['POST', '/api/tokens', { sub: 'x' }], ['POST', '/api/reset'], ['GET', '/api/scenarios'],
    ['POST', '/api/scenarios', { file: 'service.json' }], ['DELETE', '/api/scenarios/1'],
    ['GET', '/api/faults'], ['POST', '/api/faults/latency', { api: 'service', direction: 'out', ms: 100 }], ['DELETE', '/api/faults'],
    ['POST', '/api/flow/threads/t/events', { type: 'agent.typing' }],
    ['GET', '/api/circle/rooms'], ['POST', '/api/circle/rooms', { participants: [1, 2] }],
    ['GET', '/api/tap'],
  ];
  for (const [method, p, body] of endpoints) {
    for (const key of [null, 'wrong-key', `${KEY}x`, KEY.slice(0, -1)]) {
      const r = await api(method, p, body, key);
      assert.equal(r.status, 401, `${method} ${p} with key ${key}: ${r.status} ${r.text}`);
      assert.deepEqual(Object.keys(r.json || {}).sort(), ['error', 'message', 'ok'], `${method} ${p}: nothing but the refusal: ${r.text}`);
    }
  }
  // Nothing was done by the refused requests: no fault set, no room made.
  assert.deepEqual((await api('GET', '/api/faults')).json.faults, []);
  assert.deepEqual((await api('GET', '/api/circle/rooms')).json.rooms, []);
});

test('GET /api/info: version, uptime, workers, broker, the configuration with its secrets masked', T, async () => {
  const r = await api('GET', '/api/info');
  assert.equal(r.status, 200, r.text);
  const i = r.json;
  assert.match(i.version, /^\d+\.\d+\.\d+/);
  assert.ok(Math.abs(Date.parse(i.started_at) - Date.now()) < 600000, i.started_at);
  assert.equal(typeof i.uptime_s, 'number');
  assert.equal(i.workers, 2);
  assert.deepEqual(i.broker, { type: 'memory', up: true });
  assert.equal(i.mock_enabled, true);
  assert.deepEqual(i.development, { api_key: false, jwt_secret: false });
  assert.equal(i.config['api.key'], '***');
  assert.equal(i.config['auth.jwt_secret'], '***');
  assert.equal(i.config['cable.ping_interval_ms'], 500);
  assert.equal(i.config.listen, `127.0.0.1:${srv.port}`);
  assert.ok(!r.text.includes(KEY) && !r.text.includes(JWT_SECRET), 'no secret in the answer');
  assert.equal((await api('POST', '/api/info', {})).status, 405);
});

// ------------------------------------------------------------------ the browser

// A @rails/actioncable consumer under Node (the two shims of 60-mock-conns.test.js), member MEMBER.
async function consumer() {
  if (typeof globalThis.addEventListener !== 'function') globalThis.addEventListener = () => {};
  if (typeof globalThis.removeEventListener !== 'function') globalThis.removeEventListener = () => {};
  const tok = await api('POST', '/api/tokens', { sub: `m${MEMBER}`, claims: { community_member_id: MEMBER } });
  assert.equal(tok.status, 200, tok.text);
  ActionCable.adapters.WebSocket = class extends WebSocket {
    constructor(url, protocols) { super(url, protocols, { headers: { Authorization: `Bearer ${tok.json.token}` } }); }
  };
  ActionCable.ConnectionMonitor.staleThreshold = 2; // scaled to the 500 ms pings
  const events = [];
  const c = ActionCable.createConsumer(`${srv.wsUrl}/cable`);
  for (const channel of ['NotificationChannel', 'ChatRoomChannel']) {
    c.subscriptions.create({ channel, community_member_id: MEMBER }, {
      connected(d) { events.push({ kind: 'connected', channel, d }); },
      disconnected(d) { events.push({ kind: 'disconnected', channel, d }); },
      rejected() { events.push({ kind: 'rejected', channel }); },
      received(d) { events.push({ kind: 'received', channel, d }); },
    });
  }
  c.connect();
  return { c, events };
}

const memberConns = async () => (await api('GET', `/api/connections?member=${MEMBER}`)).json.connections;

test('in Chromium: sign in, see an @rails/actioncable client, publish to it, kick it, tail its frames, drive faults and Circle', T, async () => {
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 20000 });
  let cable = null;
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const problems = [];
    const urls = [];
    page.on('console', (m) => {
      // The sign-in with a wrong key is a 401 the browser reports; anything else is a problem.
      if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console.error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (r) => urls.push(r.url()));
    await page.goto(`${srv.url}/console`, { waitUntil: 'load', timeout: 10000 });

    // Sign in by keyboard alone: the key field has the focus; a wrong key first.
    assert.equal(await page.evaluate(() => document.activeElement.id), 'key');
    await page.keyboard.type('not-the-key');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('signin-error').textContent.includes('Wrong API key'), null, { timeout: 5000 });
    assert.equal(await page.isVisible('#app'), false, 'nothing shown with a wrong key');
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await page.focus('#key');
    await page.keyboard.type(KEY);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Sign in', 'Tab goes to the button');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#app', { state: 'visible', timeout: 5000 });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('wshub.console.key')), KEY);
    await page.waitForFunction(() => /wshubd \d/.test(document.getElementById('server-line').textContent), null, { timeout: 5000 });

    // The tail (the traffic tap) listens before the consumer comes.
    const tailed = (id, dir, re) => page.waitForFunction(([i, d, src]) => [...document.querySelectorAll(`#tail li[data-conn="${i}"][data-dir="${d}"]`)]
      .some((l) => new RegExp(src).test(l.textContent)), [id, dir, re.source], { timeout: 8000 });
    await page.waitForFunction(() => document.getElementById('tail-state').textContent === 'live', null, { timeout: 5000 });

    // The consumer connects and appears, with its member and both subscriptions.
    cable = await consumer();
    await waitFor(() => cable.events.filter((e) => e.kind === 'connected').length === 2, 10000, 'the consumer subscribed');
    const [first] = await memberConns();
    const row = `#conns tr[data-id="${first.id}"]`;
    await page.waitForSelector(row, { timeout: 6000 });
    const text = await page.textContent(row);
    assert.match(text, /cable/);
    assert.match(text, new RegExp(`member ${MEMBER}`));
    assert.match(text, new RegExp(`notification-channel-${MEMBER}`));
    assert.match(text, new RegExp(`chat-room-channel-${MEMBER}`));
    await page.waitForFunction((ch) => document.getElementById('channels').textContent.includes(ch), `notification-channel-${MEMBER}`, { timeout: 6000 });

    // The tail shows its frames: the welcome out, its two subscribes in, their confirmations out.
    await tailed(first.id, 'out', /cable #\d+ text \{"type":"welcome"/);
    await tailed(first.id, 'in', /"command":"subscribe".*NotificationChannel/);
    await tailed(first.id, 'in', /"command":"subscribe".*ChatRoomChannel/);
    await tailed(first.id, 'out', /confirm_subscription/);

    // Publish through the form: API C, the newNotification example, to this member's queue.
    await page.selectOption('#pub-api', 'cable');
    await page.selectOption('#pub-example', { label: 'newNotification' });
    assert.equal(await page.inputValue('#pub-event'), 'newNotification');
    await page.fill('#pub-channel', `notification-channel-${MEMBER}`);
    await page.fill('#pub-data', JSON.stringify({ id: 7, notifiable_title: 'from the console' }));
    await page.click('#publish-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('pub-result').textContent === 'delivered: 1', null, { timeout: 5000 });
    await waitFor(() => cable.events.find((e) => e.kind === 'received' && e.d.event === 'newNotification'), 5000, 'the event reached the consumer');
    assert.deepEqual(cable.events.find((e) => e.kind === 'received').d,
      { event: 'newNotification', data: { id: 7, notifiable_title: 'from the console' } });
    assert.equal(cable.events.find((e) => e.kind === 'received').channel, 'NotificationChannel');
    // ... and the tail shows the publish, and the frame that carried it to the consumer.
    await page.waitForFunction(() => /publish notification-channel-\d+ newNotification \{"id":7,"notifiable_title":"from the console"\} → 1/.test(document.getElementById('tail').textContent), null, { timeout: 5000 });
    await tailed(first.id, 'out', /\[notification-channel-\d+\].*"event":"newNotification".*from the console/);

    // Pause holds the tail; resume shows what came meanwhile.
    await page.click('#tail-pause');
    const before = await page.$$eval('#tail li', (l) => l.length);
    const r = await api('POST', '/api/publish', { channel: `notification-channel-${MEMBER}`, event: 'updateNewNotificationCount', data: { new_notifications_count: 9 } });
    assert.equal(r.status, 200);
    await page.waitForFunction(() => /paused \(\d+ new\)/.test(document.getElementById('tail-state').textContent), null, { timeout: 5000 });
    assert.equal(await page.$$eval('#tail li', (l) => l.length), before, 'nothing rendered while paused');
    await page.click('#tail-pause');
    await page.waitForFunction(() => document.getElementById('tail').textContent.includes('new_notifications_count'), null, { timeout: 5000 });

    // Kick from the console: server_restart with reconnect; the consumer comes back by itself.
    cable.events.length = 0;
    await page.click(`${row} button[data-kick]`);
    await waitFor(() => cable.events.some((e) => e.kind === 'disconnected'), 10000, 'the consumer was disconnected');
    assert.deepEqual(cable.events.find((e) => e.kind === 'disconnected').d, { willAttemptReconnect: true });
    await waitFor(() => cable.events.filter((e) => e.kind === 'connected').length === 2, 30000, 'the consumer reconnected');
    assert.deepEqual(cable.events.find((e) => e.kind === 'connected').d, { reconnected: true });
    const second = await waitFor(async () => { const l = await memberConns(); return l.length === 1 && l[0].id !== first.id && l[0]; }, 5000, 'a new connection');
    await page.waitForSelector(`#conns tr[data-id="${second.id}"]`, { timeout: 6000 });
    await page.waitForSelector(row, { state: 'detached', timeout: 6000 });
    // The tail saw the goodbye (Action Cable's disconnect, then the close frame) and the new
    // connection's subscribes.
    await tailed(first.id, 'out', /"type":"disconnect","reason":"server_restart","reconnect":true/);
    await tailed(first.id, 'out', /close 1000/);
    await tailed(second.id, 'in', /"command":"subscribe".*NotificationChannel/);

    // A fault through the form: reject the next ChatRoomChannel subscription; listed; cleared.
    await page.selectOption('#fault-kind', { label: 'Reject the next cable subscription(s)' });
    await page.click('#fault-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('faults').textContent.includes('ChatRoomChannel'), null, { timeout: 5000 });
    assert.equal((await api('GET', '/api/faults')).json.faults.length, 1);
    await page.click('#faults-clear');
    await page.waitForFunction(() => document.getElementById('faults').textContent.includes('No fault set'), null, { timeout: 5000 });

    // A Circle action: a room with this member; the consumer gets chatRoomCreated on its queue.
    cable.events.length = 0;
    await page.selectOption('#circle-action', { index: 1 });
    assert.equal(await page.inputValue('#circle-path'), 'rooms');
    await page.fill('#circle-body', JSON.stringify({ participants: [1, MEMBER], kind: 'direct' }));
    await page.click('#circle-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('circle-result').textContent.includes('"ok": true'), null, { timeout: 5000 });
    await waitFor(() => cable.events.find((e) => e.kind === 'received' && e.d.event === 'chatRoomCreated'), 5000, 'chatRoomCreated');
    assert.equal(cable.events.find((e) => e.d && e.d.event === 'chatRoomCreated').channel, 'ChatRoomChannel');

    // A scenario from its file: started, listed running, stopped.
    await page.fill('#scenario-file', 'service.json');
    await page.click('#scenario-form button[type=submit]');
    const scen = await waitFor(async () => (await api('GET', '/api/scenarios')).json.scenarios.find((x) => x.state === 'running'), 5000, 'a scenario running');
    await page.waitForFunction((id) => /running/.test((document.querySelector(`#scenarios li[data-id="${id}"]`) || {}).textContent || ''), scen.id, { timeout: 5000 });
    await page.click(`#scenarios li[data-id="${scen.id}"] button`);
    await page.waitForFunction((id) => /stopped/.test(document.querySelector(`#scenarios li[data-id="${id}"]`).textContent), scen.id, { timeout: 5000 });
    assert.equal((await api('GET', '/api/scenarios')).json.scenarios.find((x) => x.id === scen.id).state, 'stopped');

    // Charts and server info were drawn.
    await page.waitForFunction(() => document.querySelector('#c-conns polyline') && document.getElementById('m-conns').textContent !== '–', null, { timeout: 5000 });
    assert.match(await page.textContent('#server-info'), /memory, link up/);
    assert.match(await page.textContent('#config'), /"\*\*\*"/);
    assert.ok(!(await page.content()).includes(JWT_SECRET), 'the JWT secret is nowhere on the page');

    // The key never went into a URL.
    assert.ok(urls.length > 0);
    for (const u of urls) assert.ok(!u.includes(KEY), `the key is in a URL: ${u}`);
    // Sign out forgets it.
    await page.click('#signout');
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal(await page.isVisible('#app'), false);
    assert.deepEqual(problems, []);
  } finally {
    if (cable) cable.c.disconnect();
    await browser.close();
  }
});

// ------------------------------------------------------------------ Firefox

// The same console in Firefox (Debian's firefox-esr, driven over WebDriver BiDi by
// playwright-core's moz-firefox channel): sign in, an API B client appears, an event published
// through the form reaches it, Kick closes it with the form's code and reason, the tail shows it.
const FIREFOX = process.env.FIREFOX_PATH || '/usr/bin/firefox-esr';
test('in Firefox: sign in, see an API B client, publish to it, kick it', { ...T, skip: !fs.existsSync(FIREFOX) && `no Firefox at ${FIREFOX}` }, async () => {
  const { firefox } = require('playwright-core');
  const browser = await firefox.launch({ channel: 'moz-firefox', executablePath: FIREFOX, headless: true, timeout: 60000 });
  let ws = null;
  try {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`${srv.url}/console`, { waitUntil: 'load', timeout: 20000 });
    await page.fill('#key', KEY);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#app', { state: 'visible', timeout: 10000 });
    await page.waitForFunction(() => document.getElementById('tail-state').textContent === 'live', null, { timeout: 10000 });

    const sub = `ff-${process.pid}`;
    const tok = (await api('POST', '/api/tokens', { sub })).json.token;
    ws = new WebSocket(`${srv.wsUrl}/api/ws?token=${tok}`);
    const got = [];
    let closed = null;
    ws.on('message', (m) => got.push(JSON.parse(String(m))));
    ws.on('close', (code, reason) => { closed = { code, reason: String(reason) }; });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    const [c] = await waitFor(async () => { const l = (await api('GET', `/api/connections?subject=${sub}`)).json.connections; return l.length && l; }, 5000, 'listed');
    await page.waitForSelector(`#conns tr[data-id="${c.id}"]`, { timeout: 10000 });
    assert.match(await page.textContent(`#conns tr[data-id="${c.id}"]`), new RegExp(`sub ${sub}`));

    // API B's notification example, to this user's own channel.
    await page.selectOption('#pub-api', 'service');
    await page.selectOption('#pub-example', { label: 'notification' });
    await page.fill('#pub-channel', `user:${sub}`);
    await page.click('#publish-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('pub-result').textContent === 'delivered: 1', null, { timeout: 10000 });
    const n = await waitFor(() => got.find((m) => m.type === 'notification'), 5000, 'the notification');
    assert.deepEqual(n.data, { message: 'Your report is ready', level: 'info' });
    await page.waitForFunction((id) => [...document.querySelectorAll(`#tail li[data-conn="${id}"][data-dir="out"]`)]
      .some((l) => l.textContent.includes('Your report is ready')), c.id, { timeout: 10000 });

    // Kick with code 4001, reason "kicked", no reconnect.
    // (the BiDi driver's fill appends to a number field: select its text and type over it)
    await page.focus('#kick-code');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('4001');
    assert.equal(await page.inputValue('#kick-code'), '4001');
    await page.fill('#kick-reason', 'kicked');
    await page.uncheck('#kick-reconnect');
    await page.click(`#conns tr[data-id="${c.id}"] button[data-kick]`);
    await waitFor(() => closed, 5000, 'closed').catch(async (e) => { throw new Error(`${e.message}: ${await page.textContent('#conns-error')}`); });
    assert.deepEqual(closed, { code: 4001, reason: 'kicked' });
    await page.waitForSelector(`#conns tr[data-id="${c.id}"]`, { state: 'detached', timeout: 10000 });
    assert.deepEqual(problems, []);
  } finally {
    if (ws) ws.terminate();
    await browser.close();
  }
});
