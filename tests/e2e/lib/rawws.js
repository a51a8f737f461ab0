'use strict';
// A WebSocket client on a plain socket, for tests that must send exactly the bytes they build
// (bursts in one write, protocol violations, half-open sockets) and see every frame the server
// sends. It answers nothing by itself (no pong, no close echo).
const crypto = require('node:crypto');
const net = require('node:net');
const { within } = require('./util');

const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

// One client frame. mask: true (random key), false (unmasked: a protocol violation), or a
// 4-byte Buffer key.
function encodeFrame(op, payload = Buffer.alloc(0), { fin = true, rsv = 0, mask = true } = {}) {
  payload = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const h = Buffer.alloc(2 + ext + (mask ? 4 : 0));
  h[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (op & 0x0f);
  if (ext === 0) h[1] = len;
  else if (ext === 2) { h[1] = 126; h.writeUInt16BE(len, 2); }
  else { h[1] = 127; h.writeBigUInt64BE(BigInt(len), 2); }
  if (!mask) return Buffer.concat([h, payload]);
  h[1] |= 0x80;
  const key = Buffer.isBuffer(mask) ? mask : crypto.randomBytes(4);
  key.copy(h, 2 + ext);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([h, body]);
}

function closePayload(code, reason = '') {
  const r = Buffer.from(reason);
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

function closeInfo(frame) {
  const p = frame.payload;
  return { code: p.length >= 2 ? p.readUInt16BE(0) : null, reason: p.subarray(2).toString() };
}

// A WebSocket client on a plain socket: it sends exactly the frames a test builds and answers
// nothing by itself (no pong, no close echo). Every frame the server sends is parsed and kept.
class RawWs {
  static connect(port, { path: p = '/echo', allowHalfOpen = false, timeout = 5000, headers = '' } = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen });
      const key = crypto.randomBytes(16).toString('base64');
      const want = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      let head = Buffer.alloc(0);
      const timer = setTimeout(() => { sock.destroy(); reject(new Error('raw handshake timed out')); }, timeout);
      const onError = (err) => { clearTimeout(timer); reject(err); };
      sock.on('error', onError);
      sock.once('connect', () => {
        sock.setNoDelay(true);
        sock.write(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${headers}\r\n`);
      });
      const onData = (d) => {
        head = Buffer.concat([head, d]);
        const i = head.indexOf('\r\n\r\n');
        if (i < 0) return;
        sock.off('data', onData);
        sock.off('error', onError);
        clearTimeout(timer);
        const text = head.subarray(0, i).toString('latin1');
        if (!/^HTTP\/1\.1 101 /.test(text) || !text.includes(`Sec-WebSocket-Accept: ${want}`)) {
          sock.destroy();
          reject(new Error(`handshake refused:\n${text}`));
          return;
        }
        resolve(new RawWs(sock, head.subarray(i + 4)));
      };
      sock.on('data', onData);
    });
  }

  constructor(sock, rest) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.frames = [];
    this.bytes = 0;
    this.ended = false;  // FIN from the server
    this.closed = false; // the socket is gone
    this.endAt = 0;
    this.error = null;
    this.waiters = new Set();
    sock.on('data', (d) => this._feed(d));
    sock.on('end', () => { this.ended = true; this.endAt = Date.now(); this._notify(); });
    sock.on('close', () => { this.closed = true; if (!this.endAt) this.endAt = Date.now(); this._notify(); });
    sock.on('error', (err) => { this.error = err; this._notify(); });
    if (rest.length) this._feed(rest);
  }

  _feed(d) {
    this.bytes += d.length;
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) { if (b.length < 4) break; len = b.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (b.length < 10) break; len = Number(b.readBigUInt64BE(2)); off = 10; }
      const masked = (b[1] & 0x80) !== 0;
      if (masked) off += 4;
      if (b.length < off + len) break;
      let payload = Buffer.from(b.subarray(off, off + len));
      if (masked) {
        const key = b.subarray(off - 4, off);
        for (let i = 0; i < len; i++) payload[i] ^= key[i & 3];
      }
      this.frames.push({ fin: (b[0] & 0x80) !== 0, rsv: (b[0] >> 4) & 7, op: b[0] & 0x0f, masked, payload, at: Date.now() });
      this.buf = b.subarray(off + len);
    }
    this._notify();
  }

  _notify() {
    for (const w of this.waiters) {
      const v = w.check();
      if (v) { this.waiters.delete(w); w.resolve(v); }
    }
  }

  // Resolves the first truthy check(), re-evaluated on every event; bounded.
  until(check, ms, what) {
    const now = check();
    if (now) return Promise.resolve(now);
    let w;
    const p = new Promise((resolve) => { w = { check, resolve }; this.waiters.add(w); });
    return within(p, ms, what).finally(() => this.waiters.delete(w));
  }

  write(buf) { if (!this.sock.destroyed) this.sock.write(buf); }
  send(op, payload, opts) { this.write(encodeFrame(op, payload, opts)); }

  closeFrame() { return this.frames.find((f) => f.op === OP.CLOSE); }
  waitClose(ms = 5000) {
    return this.until(() => this.closeFrame() || (this.closed && { gone: true }), ms, 'a close frame')
      .then((f) => {
        if (f.gone) throw new Error(`connection closed without a close frame (${this.frames.length} frames, error ${this.error && this.error.code})`);
        return { ...closeInfo(f), at: f.at };
      });
  }
  waitEnd(ms = 5000) { return this.until(() => this.ended || this.closed, ms, 'the server to close TCP'); }
  waitFrames(n, ms = 5000) { return this.until(() => this.frames.length >= n, ms, `${n} frame(s)`); }
  destroy() { this.sock.destroy(); }
}

module.exports = { OP, encodeFrame, closePayload, closeInfo, RawWs };
