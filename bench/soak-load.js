#!/usr/bin/env node
'use strict';
// The soak's load (bench/soak.sh runs it): mixed traffic on every API of one wshubd on
// 127.0.0.1 for a given time, then every client leaves and the process exits by itself.
//
//   node bench/soak-load.js --port P --duration S --secret JWT_SECRET --api-key K --mod-key M
//        [--scale 1] [--status FILE]
//
// At --scale 1 (the rates are multiplied by it; see bench/README.md "Soak" for why these):
//   API B      150 connections, each on 2 of 20 conversation channels; 20 replaced a second
//              (half closed with 1000, half dropped without a close); 50 subscribe/unsubscribe
//              and 10 pings a second; 5 chat_message commands a second (fan-out)
//   publish    POST /api/publish 50/s to the conversation channels, 10/s to the cable rooms,
//              5/s to Flow threads (keep-alive, 4 sockets)
//   cable      40 /cable connections (3 channels each), 2 replaced a second
//   moderation 4 WebSocket connections at 5 requests/s each, reconnected every 30 s; POST 5/s
//   Flow       a new socket every second (socket.info, then /ws/<token>), 2 message.send a
//              second (one in 8 of 2-16 KB, the others 100-1000 bytes) on 20 reused threads,
//              closed after 15 s; GET /thread.history 1/s
//   echo       2 connections, one 1-32 KB message every 200 ms each
//   slow       every 20 s (at most 2 at once) an API B client subscribes to conversation:slow
//              and 5 busy channels and stops reading; 32 KB publishes at 20/s to the first fill
//              its socket, then its queue (hundreds of small frames among them) until the server
//              closes it (1013); after 40 s the client reads again and checks the code
//   garbage    10 connections a second: random bytes, bad HTTP (bad lines, huge headers, a
//              body over the limit), upgrades followed by bad frames (unmasked, reserved opcode,
//              bad UTF-8, a 2^63 length), JSON with NULs and broken JSON to every API, and
//              requests left half-sent (at most 20 at once, dropped after 15 s)
// Every unexpected outcome on a well-behaved client (error reply, refused publish, unanswered
// request after 15 s, connection error, unexpected close code) counts as an error; what the
// garbage and slow clients provoke does not. --status FILE is rewritten every second with
// {"t","ops","errors","by":{...},"open":{...}}; the last line on stdout is the final summary.
const fs = require('node:fs');
const net = require('node:net');
const http = require('node:http');
const path = require('node:path');
const crypto = require('node:crypto');

const ROOT = path.resolve(__dirname, '..');
const WebSocket = require(path.join(ROOT, 'tests', 'e2e', 'node_modules', 'ws'));

function parseArgs() {
  const o = { port: 0, duration: 60, secret: '', apiKey: '', modKey: '', scale: 1, status: '' };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i += 2) {
    const k = a[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(k in o) || a[i + 1] === undefined) { process.stderr.write(`soak-load: bad option ${a[i]}\n`); process.exit(2); }
    o[k] = typeof o[k] === 'number' ? Number(a[i + 1]) : a[i + 1];
  }
  if (!o.port || !o.secret || !o.apiKey || !o.modKey || !(o.duration > 0) || !(o.scale > 0)) {
    process.stderr.write('usage: soak-load.js --port P --duration S --secret S --api-key K --mod-key M [--scale X] [--status FILE]\n');
    process.exit(2);
  }
  return o;
}
const O = parseArgs();
const HOST = '127.0.0.1';
const BASE = `ws://${HOST}:${O.port}`;
const rate = (n) => Math.max(1, Math.round(n * O.scale));

// ------------------------------------------------------------------ bookkeeping

const ops = {};
const errs = {};
const lastErr = {};
const open = {};
const op = (k, n = 1) => { ops[k] = (ops[k] || 0) + n; };
const err = (k, detail) => { errs[k] = (errs[k] || 0) + 1; if (detail !== undefined) lastErr[k] = String(detail).slice(0, 200); };
const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
const started = Date.now();
let stopping = false;
const timers = [];
const every = (ms, fn) => { const t = setInterval(() => { if (!stopping) fn(); }, ms); timers.push(t); };
const pick = (arr) => arr[Math.floor(Math.random() * arr.length)];
const rnd = (n) => Math.floor(Math.random() * n);

function writeStatus(final = false) {
  const s = { t: Math.round((Date.now() - started) / 1000), ops: sum(ops), errors: sum(errs), by: { ops, errors: errs }, open, final };
  if (final) s.last_errors = lastErr;
  if (O.status) {
    const tmp = `${O.status}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(s));
    fs.renameSync(tmp, O.status);
  }
  return s;
}

function b64url(x) { return Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url'); }
function mint(claims) {
  const now = Math.floor(Date.now() / 1000);
  const h = b64url({ alg: 'HS256', typ: 'JWT' });
  const p = b64url({ iat: now, exp: now + O.duration + 3600, ...claims });
  const sig = crypto.createHmac('sha256', O.secret).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${sig}`;
}

// Well-behaved WebSocket clients: a registry so that the end closes every one of them.
const clients = new Set();
function track(ws, kind, { onMessage, expectClose = [1000, 1001, 1005] } = {}) {
  clients.add(ws);
  open[kind] = (open[kind] || 0) + 1;
  ws.soakDropped = false;
  ws.on('message', (data, isBinary) => { if (onMessage) onMessage(isBinary ? data : data.toString()); });
  ws.on('error', (e) => { if (!stopping && !ws.soakDropped) err(`${kind}_conn`, e.message); });
  ws.on('close', (code) => {
    clients.delete(ws);
    open[kind]--;
    if (!stopping && !ws.soakDropped && !expectClose.includes(code)) err(`${kind}_close`, `close ${code}`);
  });
  return ws;
}
// onMessage of a JSON API: unparsable frames and the API's refusals count as errors, the rest
// as operations by message type.
const jsonMessages = (kind, isError, then) => (text) => {
  let m;
  try { m = JSON.parse(text); } catch { err(`${kind}_json`, text); return; }
  if (isError(m)) err(`${kind}_error`, text);
  else op(`${kind}_${m.type || 'data'}`);
  if (then) then(m);
};
function drop(ws) {
  ws.soakDropped = true;
  if (Math.random() < 0.5) ws.close(1000); else ws.terminate();
}

// ------------------------------------------------------------------ HTTP

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
let httpInFlight = 0;
function request(method, p, headers, body, cb) {
  if (httpInFlight > 200) { err('http_backlog', 'over 200 requests in flight'); return; }
  httpInFlight++;
  const data = body === undefined ? null : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const req = http.request({ host: HOST, port: O.port, method, path: p, agent, timeout: 15000,
    headers: { ...(data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {}), ...headers } }, (res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => { httpInFlight--; cb(res.statusCode, Buffer.concat(chunks).toString()); });
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => { httpInFlight--; if (!stopping) cb(0, e.message); });
  req.end(data);
}

function publish(channel, event, data) {
  request('POST', '/api/publish', { Authorization: `Bearer ${O.apiKey}` }, { channel, event, data }, (status, text) => {
    if (status === 200) op('publish'); else err('publish', `${status} ${text}`);
  });
}

// ------------------------------------------------------------------ API B

const B_CHANNELS = Array.from({ length: 20 }, (_, i) => `conversation:c${i}`);
const bPool = [];
let bSeq = 0;
function openB() {
  const sub = `soak-b-${bSeq++}`;
  const ws = new WebSocket(`${BASE}/api/ws?token=${mint({ sub })}`, { perMessageDeflate: false });
  ws.subs = new Set();
  track(ws, 'b', { onMessage: jsonMessages('b', (m) => m.type === 'error') });
  ws.on('open', () => {
    for (let i = 0; i < 2; i++) subscribe(ws, pick(B_CHANNELS));
    bPool.push(ws);
  });
  ws.on('close', () => { const i = bPool.indexOf(ws); if (i >= 0) bPool.splice(i, 1); });
}
function subscribe(ws, ch) {
  if (ws.readyState !== WebSocket.OPEN) return;
  ws.send(JSON.stringify({ type: 'subscribe', data: { channel: ch } }));
  ws.subs.add(ch);
}
function bTick() {
  // Keep the pool full, then churn, then move subscriptions around.
  const target = rate(150);
  for (let i = open.b || 0; i < target; i++) openB();
  for (let i = 0; i < Math.max(1, Math.round(2 * O.scale)) && bPool.length; i++) { const ws = bPool.splice(rnd(bPool.length), 1)[0]; drop(ws); }
  for (let i = 0; i < rate(5) && bPool.length; i++) {
    const ws = pick(bPool);
    const old = [...ws.subs][0];
    if (old) { ws.send(JSON.stringify({ type: 'unsubscribe', data: { channel: old } })); ws.subs.delete(old); }
    subscribe(ws, pick(B_CHANNELS));
  }
  if (bPool.length) pick(bPool).send('{"type":"ping"}');
}
function bChat() {
  if (!bPool.length) return;
  const ws = pick(bPool);
  const ch = [...ws.subs][0];
  if (ch) ws.send(JSON.stringify({ type: 'chat_message', data: { conversation_id: ch.slice('conversation:'.length), content: `soak ${Date.now()}` } }));
}

// ------------------------------------------------------------------ cable

const cPool = [];
let cSeq = 0;
function openCable() {
  const member = 1000 + (cSeq++ % 500);
  const ws = new WebSocket(`${BASE}/cable`, ['actioncable-v1-json', 'actioncable-unsupported'],
    { perMessageDeflate: false, headers: { Authorization: `Bearer ${mint({ sub: String(member), community_member_id: member })}` } });
  track(ws, 'cable', { onMessage: jsonMessages('cable', (m) => m.type === 'reject_subscription' || m.type === 'disconnect') });
  ws.on('open', () => {
    const ids = [{ channel: 'ChatRoomChannel', community_member_id: member }, { channel: 'NotificationChannel', community_member_id: member },
      { channel: 'Chats::RoomChannel', chat_room_id: 1 + rnd(5) }];
    for (const id of ids) ws.send(JSON.stringify({ command: 'subscribe', identifier: JSON.stringify(id) }));
    cPool.push(ws);
  });
  ws.on('close', () => { const i = cPool.indexOf(ws); if (i >= 0) cPool.splice(i, 1); });
}
function cableTick() {
  for (let i = open.cable || 0; i < rate(40); i++) openCable();
  if (cPool.length) drop(cPool.splice(rnd(cPool.length), 1)[0]);
}

// ------------------------------------------------------------------ moderation

const SAMPLES = ['hello world', 'you are an absolute idiot', 'buy cheap pills at http://x.example.com call 555-123-4567',
  'I love classic rock from the seventies', 'f.u.c.k you', 'SHOUTING IS NOT NICE!!!', 'Scunthorpe United won again'];
const modPending = new Map(); // reference -> sent at
let modSeq = 0;
const modPool = [];
function openMod() {
  const ws = new WebSocket(`${BASE}/text/moderation`, { perMessageDeflate: false, headers: { 'x-chatsight-api-auth': O.modKey } });
  ws.born = Date.now();
  track(ws, 'mod', {
    onMessage: (text) => {
      let m;
      try { m = JSON.parse(text); } catch { err('mod_json', text); return; }
      const ref = m.response && m.response.metadata && m.response.metadata.self_reference;
      if (!modPending.delete(ref)) err('mod_uncorrelated', text);
      if (m.success) op('mod_answer'); else err('mod_error', text);
    },
  });
  ws.on('open', () => modPool.push(ws));
  ws.on('close', () => { const i = modPool.indexOf(ws); if (i >= 0) modPool.splice(i, 1); });
}
function modTick() {
  for (let i = open.mod || 0; i < 4; i++) openMod();
  for (const ws of modPool) {
    if (Date.now() - ws.born > 30000 && modPending.size === 0) { drop(ws); continue; }
    const reference = `m${modSeq++}`;
    modPending.set(reference, Date.now());
    ws.send(JSON.stringify({ sample: pick(SAMPLES), reference }));
  }
  const now = Date.now();
  for (const [ref, at] of modPending) if (now - at > 15000) { modPending.delete(ref); err('mod_unanswered', ref); }
}
function modPost() {
  request('POST', '/text/moderation', { 'x-chatsight-api-auth': O.modKey }, { sample: pick(SAMPLES), reference: `p${modSeq++}` }, (status, text) => {
    if (status === 200) op('mod_post'); else err('mod_post', `${status} ${text}`);
  });
}

// ------------------------------------------------------------------ Flow

let flowSeq = 0;
const flowSockets = new Set();
function text(n) {
  const words = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'héllo', 'wörld', '日本', 'emoji🙂'];
  let s = '';
  while (Buffer.byteLength(s) < n) s += `${pick(words)} `;
  return s;
}
function openFlow() {
  const n = flowSeq++;
  const threadId = `soak-thread-${n % 20}`;
  request('GET', `/socket.info?clientId=soak-client&sessionId=soak-session-${n}`, {}, undefined, (status, body) => {
    if (status !== 200) { err('flow_info', `${status} ${body}`); return; }
    let endpoint;
    try { endpoint = JSON.parse(body).payload.endpoint; } catch { err('flow_info', body); return; }
    if (stopping) return;
    const ws = new WebSocket(endpoint, { perMessageDeflate: false });
    track(ws, 'flow', { onMessage: jsonMessages('flow', (m) => m.type === 'error') });
    ws.on('open', () => {
      flowSockets.add(ws);
      const iv = setInterval(() => {
        if (ws.readyState !== WebSocket.OPEN || stopping) return;
        // One message in 8 is large (2-16 KB), the others 100-1000 bytes.
        const size = rnd(8) === 0 ? 2048 + rnd(14336) : 100 + rnd(900);
        ws.send(JSON.stringify({ type: 'message.send', payload: { threadId, traceId: n, speech: text(size),
          originator: { name: 'soak', role: 'external' }, nonce: `n${n}` } }));
      }, Math.max(50, Math.round(500 / O.scale)));
      setTimeout(() => { clearInterval(iv); flowSockets.delete(ws); ws.soakDropped = true; ws.close(1000); }, 15000);
      ws.on('close', () => { clearInterval(iv); flowSockets.delete(ws); });
    });
  });
}
function flowHistory() {
  request('GET', '/thread.history', { 'x-flowai-clientid': 'soak-client', 'x-flowai-threadid': `soak-thread-${rnd(20)}` }, undefined, (status, body) => {
    if (status === 200) op('flow_history'); else err('flow_history', `${status} ${body.slice(0, 100)}`);
  });
}

// ------------------------------------------------------------------ echo

const echoPool = [];
function echoTick() {
  for (let i = open.echo || 0; i < 2; i++) {
    const ws = new WebSocket(`${BASE}/echo`, { perMessageDeflate: false });
    track(ws, 'echo', { onMessage: () => op('echo') });
    ws.on('open', () => echoPool.push(ws));
    ws.on('close', () => { const k = echoPool.indexOf(ws); if (k >= 0) echoPool.splice(k, 1); });
  }
  for (const ws of echoPool) ws.send(crypto.randomBytes(1024 + rnd(31 * 1024)), { binary: true });
}

// ------------------------------------------------------------------ slow consumers

let slowOpen = 0;
const SLOW_PAYLOAD = text(32 * 1024);
function openSlow() {
  if (slowOpen >= 2) return;
  slowOpen++;
  const ws = new WebSocket(`${BASE}/api/ws?token=${mint({ sub: `soak-slow-${Date.now()}` })}`, { perMessageDeflate: false });
  let code = null;
  ws.on('error', () => {});
  ws.on('message', () => {});
  ws.on('close', (c) => { code = c; });
  ws.on('open', () => {
    // The big events fill the socket; the small ones of 5 busy channels then pile up as many
    // queue entries (hundreds) before the byte limit is reached.
    for (const ch of ['conversation:slow', ...Array.from({ length: 5 }, () => pick(B_CHANNELS))])
      ws.send(JSON.stringify({ type: 'subscribe', data: { channel: ch } }));
    setTimeout(() => { if (ws._socket) ws._socket.pause(); }, 200);
  });
  clients.add(ws);
  setTimeout(() => {
    if (ws._socket) ws._socket.resume();
    setTimeout(() => {
      // 1013 when the close frame got through; the server may also drop the connection with
      // its queue full (1006). Still open after 50 s is what must not happen.
      if (code === 1013 || code === 1006) op(`slow_closed_${code}`);
      else if (!stopping) err('slow_not_closed', `close code ${code}`);
      ws.terminate();
      clients.delete(ws);
      slowOpen--;
    }, 10000);
  }, 40000);
}
function slowPublish() { publish('conversation:slow', 'chat_message', { conversation_id: 'slow', sender_id: 'soak', content: SLOW_PAYLOAD }); }

// ------------------------------------------------------------------ garbage

let garbageOpen = 0;
let halfOpen = 0;
function raw(bytes, { hold = 0 } = {}) {
  garbageOpen++;
  const s = net.connect(O.port, HOST);
  const done = () => { garbageOpen--; clearTimeout(t); };
  const t = setTimeout(() => s.destroy(), hold || 5000);
  s.on('error', () => {});
  s.on('data', () => {});
  s.on('close', done);
  s.on('connect', () => { s.write(bytes); op('garbage'); if (!hold) s.end(); });
}
function frame(opcode, payload, { mask = true, fin = true, len } = {}) {
  const n = len !== undefined ? len : payload.length;
  const head = [((fin ? 0x80 : 0) | opcode)];
  const m = mask ? 0x80 : 0;
  let ext = Buffer.alloc(0);
  if (n < 126) head.push(m | n);
  else if (n < 65536) { head.push(m | 126); ext = Buffer.alloc(2); ext.writeUInt16BE(n); }
  else { head.push(m | 127); ext = Buffer.alloc(8); ext.writeBigUInt64BE(BigInt(n)); }
  const key = mask ? crypto.randomBytes(4) : Buffer.alloc(0);
  const body = Buffer.from(payload);
  if (mask) for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}
function upgrade(p, extra = '') {
  return `GET ${p} HTTP/1.1\r\nHost: ${HOST}:${O.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;
}
function garbageWs(p, payloads, headers) {
  // A real client whose messages are nonsense (valid frames, bad content): the server must answer
  // with an error or close, and go on.
  garbageOpen++;
  const ws = new WebSocket(`${BASE}${p}`, { perMessageDeflate: false, headers });
  const t = setTimeout(() => ws.terminate(), 3000);
  ws.on('error', () => {});
  ws.on('message', () => {});
  ws.on('open', () => { for (const x of payloads) ws.send(x); op('garbage'); });
  ws.on('close', () => { garbageOpen--; clearTimeout(t); });
}
const GARBAGE = [
  () => raw(crypto.randomBytes(1 + rnd(4096))),
  () => raw('BLAH / NOTHTTP\r\n\r\n'),
  () => raw('GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n'),
  () => raw(`GET /${'a'.repeat(10000 + rnd(10000))} HTTP/1.1\r\nHost: x\r\n\r\n`),
  () => raw(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20000)}\r\n\r\n`),
  () => raw(`GET / HTTP/1.1\r\n${Array.from({ length: 200 }, (_, i) => `X-${i}: y`).join('\r\n')}\r\n\r\n`),
  () => raw(`POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${O.apiKey}\r\nContent-Length: 5000000\r\n\r\n{"channel":`),
  () => raw(`POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${O.apiKey}\r\nContent-Length: 40\r\n\r\n{"channel":"a\u0000b","event":1,"data":[}}`),
  () => raw(`POST /text/moderation HTTP/1.1\r\nHost: x\r\nx-chatsight-api-auth: ${O.modKey}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`),
  () => raw(Buffer.concat([Buffer.from(upgrade('/echo')), frame(1, 'unmasked', { mask: false })])),
  () => raw(Buffer.concat([Buffer.from(upgrade('/echo')), frame(3, 'reserved opcode')])),
  () => raw(Buffer.concat([Buffer.from(upgrade('/echo')), frame(1, Buffer.from([0xc3, 0x28, 0xff, 0xfe]))])),
  () => raw(Buffer.concat([Buffer.from(upgrade('/echo')), frame(2, '', { len: 2 ** 62 })])),
  () => raw(Buffer.concat([Buffer.from(upgrade('/echo')), frame(9, 'x'.repeat(200))])),
  () => raw(Buffer.concat([Buffer.from(upgrade('/echo')), frame(1, 'frag', { fin: false }), frame(2, 'mixed')])),
  () => raw(Buffer.concat([Buffer.from(upgrade(`/api/ws?token=${mint({ sub: 'g' })}`)), crypto.randomBytes(64)])),
  () => garbageWs(`/api/ws?token=${mint({ sub: 'soak-garbage' })}`, ['{"type":"subscribe\u0000","data":{"channel":"a\u0000b"}}',
    '\u0000\u0000{', '{"type":', '[1,2,3]', '{"type":"subscribe","data":{"channel":"' + 'x'.repeat(300) + '"}}', Buffer.from([0, 1, 2])]),
  () => garbageWs('/cable', ['{"command":"subscribe","identifier":"{\\"channel\\":\u0000}"}', '\u0000', '{"command":"message","identifier":"x","data":"{"}'],
    { Authorization: `Bearer ${mint({ sub: '7', community_member_id: 7 })}` }),
  () => garbageWs('/text/moderation', ['{"sample":"a\u0000b","reference":null}', 'not json\u0000', '{"sample":5}'], { 'x-chatsight-api-auth': O.modKey }),
  () => garbageWs('/api/ws?token=not-a-token', ['x']),
  () => request('GET', `/socket.info?clientId=x&sessionId=g${rnd(1e9)}`, {}, undefined, (status, body) => {
    if (status !== 200) return;
    let endpoint;
    try { endpoint = JSON.parse(body).payload.endpoint; } catch { return; }
    garbageWs(endpoint.slice(BASE.length), ['{"type":"message.send","payload":{"threadId":"\u0000","speech":null}}', '\u0000{{', '{"type":"nope"}']);
  }),
  () => {
    if (halfOpen >= 20) return;
    halfOpen++;
    const s = net.connect(O.port, HOST);
    s.on('error', () => {});
    s.on('data', () => {});
    s.on('connect', () => { s.write('GET /healthz HTTP/1.1\r\nHo'); op('garbage'); });
    const t = setTimeout(() => s.destroy(), 15000);
    s.on('close', () => { halfOpen--; clearTimeout(t); });
  },
];
function garbageTick() { if (garbageOpen < 100) pick(GARBAGE)(); }

// ------------------------------------------------------------------ run

const CABLE_EVENTS = ['newMessage', 'updatedMessage', 'newNotification'];
every(100, bTick);
every(Math.round(200 / O.scale), bChat);
every(Math.round(20 / O.scale), () => publish(pick(B_CHANNELS), 'chat_message', { conversation_id: 'x', sender_id: 'soak', content: text(100 + rnd(400)) }));
every(Math.round(100 / O.scale), () => {
  const k = 1 + rnd(5);
  publish(pick([`chat-room-${k}-channel`, `chat-room-channel-${1000 + rnd(500)}`, `notification-channel-${1000 + rnd(500)}`]), pick(CABLE_EVENTS), { id: rnd(1e6), body: text(200) });
});
every(Math.round(200 / O.scale), () => publish(`thread:soak-thread-${rnd(20)}`, 'message', { text: text(300) }));
every(500, cableTick);
every(Math.round(200 / O.scale), modTick);
every(Math.round(200 / O.scale), modPost);
every(Math.round(1000 / O.scale), openFlow);
every(1000, flowHistory);
every(200, echoTick);
every(20000, openSlow);
every(50, slowPublish);
every(Math.round(100 / O.scale), garbageTick);
every(1000, () => writeStatus());
setTimeout(openSlow, 2000);
writeStatus();

setTimeout(() => {
  stopping = true;
  for (const t of timers) clearInterval(t);
  for (const ws of clients) { ws.soakDropped = true; ws.terminate(); }
  agent.destroy();
  const s = writeStatus(true);
  process.stdout.write(`${JSON.stringify(s)}\n`);
  // Everything is closed: the loop drains by itself; a leftover handle must not keep us alive.
  setTimeout(() => process.exit(0), 3000).unref();
}, O.duration * 1000);
