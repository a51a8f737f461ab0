'use strict';
// scripts/console-screenshots: the console with some life in it, shot in headless Chromium.
//   node tests/e2e/lib/console-screenshots.js OUTDIR
// Clients: two API B users chatting in conversation:conv-123, an Action Cable member 42
// (notifications, chat rooms), a Flow socket on thread jane.doe; publishes from the server API.
// Every loop is bounded: the whole run takes about 20 s and stops by itself.
const path = require('node:path');
const WebSocket = require('ws');
const { start } = require('./server');
const { httpRequest, sleep } = require('./util');

const KEY = 'wshub-development-api-key';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--hide-scrollbars', '--force-color-profile=srgb'];

async function main() {
  const out = path.resolve(process.argv[2] || 'docs');
  const srv = await start({ env: { WSHUB_WORKERS: '2', WSHUB_LOG_LEVEL: 'warn',
    WSHUB_MOCK_SCENARIO_DIR: path.join(__dirname, '..', '..', '..', 'config', 'scenarios') } });
  const api = (method, p, body) => httpRequest(srv, { method, path: p, body, headers: { Authorization: `Bearer ${KEY}` } });
  const sockets = [];
  const open = (url, opts) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols || [], { headers: opts.headers || {} });
    sockets.push(ws);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
  try {
    const users = [];
    for (const sub of ['ada', 'bob']) {
      const t = (await api('POST', '/api/tokens', { sub })).json.token;
      const ws = await open(`${srv.wsUrl}/api/ws?token=${t}`, {});
      ws.send(JSON.stringify({ type: 'subscribe', data: { channel: 'conversation:conv-123' } }));
      users.push(ws);
    }
    const ct = (await api('POST', '/api/tokens', { sub: 'member-42', claims: { community_member_id: 42 } })).json.token;
    const cable = await open(`${srv.wsUrl}/cable`, { headers: { Authorization: `Bearer ${ct}` }, protocols: ['actioncable-v1-json'] });
    for (const channel of ['NotificationChannel', 'ChatRoomChannel']) {
      cable.send(JSON.stringify({ command: 'subscribe', identifier: JSON.stringify({ channel, community_member_id: 42 }) }));
    }
    const info = (await httpRequest(srv, { path: '/socket.info?clientId=demo&sessionId=1' })).json;
    const flow = await open(info.payload.endpoint, {});
    flow.send(JSON.stringify({ type: 'message.send', payload: { threadId: 'jane.doe', speech: 'hello', originator: { name: 'Jane Doe', role: 'external' } } }));

    await api('POST', '/api/scenarios', { file: 'cable.json' }); // listed in the Scenarios panel

    const { chromium } = require('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 20000 });
    let n = 0;
    const traffic = setInterval(() => {
      n++;
      users[n % 2].send(JSON.stringify({ type: 'chat_message', data: { conversation_id: 'conv-123', content: `message ${n}` } }));
      if (n % 3 === 0) api('POST', '/api/publish', { channel: 'notification-channel-42', event: 'updateNewNotificationCount', data: { new_notifications_count: n } });
      if (n % 5 === 0) flow.send(JSON.stringify({ type: 'ping' }));
    }, 250);
    try {
      const shots = [
        ['console-desktop.png', { width: 1280, height: 800 }, null],
        ['console-desktop-tail.png', { width: 1280, height: 800 }, '#sec-tail'],
        ['console-phone.png', { width: 390, height: 844 }, null],
      ];
      for (const [file, viewport, anchor] of shots) {
        const page = await browser.newPage({ viewport, deviceScaleFactor: 1, colorScheme: 'light' });
        await page.goto(`${srv.url}/console`, { waitUntil: 'load' });
        await page.fill('#key', KEY);
        await page.click('#signin-form button[type=submit]');
        await page.waitForSelector('#conns tbody tr', { timeout: 5000 });
        await sleep(9000); // a few chart samples and tail lines
        if (anchor) await page.$eval(anchor, (e) => e.scrollIntoView({ block: 'start' }));
        await page.evaluate(() => document.activeElement && document.activeElement.blur());
        await page.screenshot({ path: path.join(out, file) });
        console.log(`wrote ${path.join(out, file)}`);
        await page.close();
      }
    } finally {
      clearInterval(traffic);
      await browser.close();
    }
  } finally {
    for (const ws of sockets) ws.terminate();
    await srv.stop();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
