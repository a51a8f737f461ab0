'use strict';
// sd_notify (config/wshubd.service is Type=notify): READY=1 once listening, RELOADING=1 then
// READY=1 around a SIGHUP reload, STOPPING=1 when SIGTERM starts the drain. The notification
// socket is a unix datagram socket of a small python3 listener (node has no unix datagrams).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { start, BIN } = require('./lib/server');
const { within } = require('./lib/util');

const LISTENER = `
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("bound"), flush=True)
while True:
    print(json.dumps(s.recv(4096).decode()), flush=True)
`;

function linkedWithLibsystemd() {
  try { return /libsystemd\.so/.test(execFileSync('ldd', [BIN], { encoding: 'utf8' })); } catch { return false; }
}

// Starts the listener; .next(re) resolves the first message not yet taken that matches re.
async function listener(sock) {
  const child = spawn('python3', ['-c', LISTENER, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages = [];
  const waiters = [];
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      messages.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
      waiters.forEach((w) => w());
    }
  });
  const next = (re, what) => within(new Promise((resolve) => {
    const check = () => {
      const k = messages.findIndex((m) => re.test(m));
      if (k >= 0) { waiters.splice(waiters.indexOf(check), 1); resolve(messages.splice(k, 1)[0]); }
    };
    waiters.push(check);
    check();
  }), 10000, what);
  await next(/^bound$/, 'the listener');
  return { child, messages, next };
}

test('sd_notify: READY once listening, RELOADING then READY around SIGHUP, STOPPING on SIGTERM', { timeout: 60000 }, async (t) => {
  if (!linkedWithLibsystemd()) {
    t.skip(`${BIN} is built without libsystemd (install libsystemd-dev and reconfigure): sd_notify is a no-op`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wshub-notify-'));
  const sock = path.join(dir, 'notify');
  const l = await listener(sock);
  t.after(() => { l.child.kill(); fs.rmSync(dir, { recursive: true, force: true }); });
  const inst = await start({ env: { NOTIFY_SOCKET: sock } });
  try {
    const ready = await l.next(/READY=1/, 'READY=1');
    assert.match(ready, new RegExp(`STATUS=listening on 127\\.0\\.0\\.1:${inst.port}`));
    assert.deepEqual(l.messages, [], 'nothing before READY=1');
    inst.child.kill('SIGHUP');
    await l.next(/^RELOADING=1/, 'RELOADING=1');
    await l.next(/^READY=1/, 'READY=1 after the reload');
    assert.equal((await inst.get('/healthz')).status, 200);
  } finally {
    // One SIGTERM (teardown's): a second one during the drain is the default action, a kill.
    await inst.teardown();
  }
  await l.next(/^STOPPING=1/, 'STOPPING=1');
});
