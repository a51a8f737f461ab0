'use strict';
// A raw-TCP RFC 6455 fuzzing client that behaves like the Autobahn|Testsuite "fuzzingclient"
// (wstest -m fuzzingclient): the same opening handshake, the same frame encoder (arbitrary
// FIN/RSV/opcode/length, masking, payload repetition, TCP chopping, synced writes), the same
// frame decoder and protocol-violation handling on the receiving side (autobahn-python's
// WebSocketProtocol with failByDrop = false, as the fuzzing factories set it), the same close
// handshake bookkeeping (closedByMe, failedByMe, droppedByMe, wasClean, remote close code) and
// the same per-case verdict rules (case.py: expected/expectedClose, closedByWrongEndpointIsFatal).
//
// Only node built-ins are used (net, crypto). Every wait is bounded: the case's own timers
// (killAfter/closeAfter/continueLater), the protocol timeouts (opening handshake 5 s, closing
// handshake 1 s, server TCP drop 1 s — autobahn-python's defaults) and a harness safety cap.

const net = require('node:net');
const crypto = require('node:crypto');

// ---- verdicts (case.py) ------------------------------------------------------------------
const OK = 'OK';
const NON_STRICT = 'NON-STRICT';
const FAILED = 'FAILED';
const WRONG_CODE = 'WRONG CODE';
const UNCLEAN = 'UNCLEAN';
const FAILED_BY_CLIENT = 'FAILED BY CLIENT';
const INFORMATIONAL = 'INFORMATIONAL';
const UNIMPLEMENTED = 'UNIMPLEMENTED';
const VERDICTS = [OK, NON_STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED];

// ---- protocol constants -------------------------------------------------------------------
const STATE_CONNECTING = 'CONNECTING';
const STATE_OPEN = 'OPEN';
const STATE_CLOSING = 'CLOSING';
const STATE_CLOSED = 'CLOSED';

const CLOSE_STATUS_CODE_NORMAL = 1000;
const CLOSE_STATUS_CODE_GOING_AWAY = 1001;
const CLOSE_STATUS_CODE_PROTOCOL_ERROR = 1002;
const CLOSE_STATUS_CODE_UNSUPPORTED_DATA = 1003;
const CLOSE_STATUS_CODE_INVALID_PAYLOAD = 1007;
// Codes a peer may put into a close frame in the 1000-2999 range (autobahn-python's
// CLOSE_STATUS_CODES_ALLOWED). 3000-4999 are always allowed, <1000 and >=5000 never.
const CLOSE_STATUS_CODES_ALLOWED = new Set([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013]);

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

// autobahn-python protocol option defaults (seconds) as used by the fuzzing client.
const DEFAULT_OPTIONS = {
  openHandshakeTimeout: 5,
  closeHandshakeTimeout: 1,
  serverConnectionDropTimeout: 1,
  maxWait: Number(process.env.AUTOBAHN_MAX_WAIT || 20), // cap for a case's own long waits (9.x: 10..1000 s)
};

// ---- incremental UTF-8 validator (Hoehrmann DFA, as autobahn's Utf8Validator) -------------
const UTF8_ACCEPT = 0;
const UTF8_REJECT = 12;
const UTF8_TYPE = new Uint8Array(256);
(function initTypes() {
  const set = (a, b, v) => { for (let i = a; i <= b; i++) UTF8_TYPE[i] = v; };
  set(0x00, 0x7f, 0); set(0x80, 0x8f, 1); set(0x90, 0x9f, 9); set(0xa0, 0xbf, 7);
  set(0xc0, 0xc1, 8); set(0xc2, 0xdf, 2); set(0xe0, 0xe0, 10); set(0xe1, 0xec, 3);
  set(0xed, 0xed, 4); set(0xee, 0xef, 3); set(0xf0, 0xf0, 11); set(0xf1, 0xf3, 6);
  set(0xf4, 0xf4, 5); set(0xf5, 0xff, 8);
})();
const UTF8_TRANS = new Uint8Array([
  0, 12, 24, 36, 60, 96, 84, 12, 12, 12, 48, 72, // 0: accept
  12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, // 12: reject
  12, 0, 12, 12, 12, 12, 12, 0, 12, 0, 12, 12, // 24: 1 continuation byte left
  12, 24, 12, 12, 12, 12, 12, 24, 12, 24, 12, 12, // 36: 2 left
  12, 12, 12, 12, 12, 12, 12, 24, 12, 12, 12, 12, // 48: after E0
  12, 24, 12, 12, 12, 12, 12, 12, 12, 24, 12, 12, // 60: after ED
  12, 12, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12, // 72: after F0
  12, 36, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12, // 84: after F1-F3
  12, 36, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, // 96: after F4
]);

class Utf8Validator {
  constructor() { this.reset(); }
  reset() { this.state = UTF8_ACCEPT; this.index = 0; }
  // Returns [valid so far, ends on a code point boundary, index in this chunk, total index].
  validate(buf) {
    let state = this.state;
    let i = 0;
    if (state !== UTF8_REJECT) {
      for (; i < buf.length; i++) {
        state = UTF8_TRANS[state + UTF8_TYPE[buf[i]]];
        if (state === UTF8_REJECT) break;
      }
    }
    this.state = state;
    this.index += i;
    if (state === UTF8_REJECT) return [false, false, i, this.index];
    return [true, state === UTF8_ACCEPT, i, this.index];
  }
}

function isValidUtf8(buf) {
  const v = new Utf8Validator();
  const r = v.validate(buf);
  return r[0] && r[1];
}

// ---- helpers -------------------------------------------------------------------------------
function toBuf(x) {
  if (x === undefined || x === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(x)) return x;
  if (typeof x === 'string') return Buffer.from(x, 'utf8');
  return Buffer.from(x);
}

// payload repeated/truncated to exactly len octets (sendFrame's payload_len)
function repeatPayload(payload, len) {
  if (payload.length < 1) throw new Error(`cannot construct repeated payload with length ${len} from empty payload`);
  return Buffer.alloc(len, payload);
}

function maskInPlace(buf, mask, offset = 0) {
  // offset: position of buf[0] within the frame payload (streamed masking)
  for (let i = 0; i < buf.length; i++) buf[i] ^= mask[(offset + i) & 3];
  return buf;
}

function randomMask() { return crypto.randomBytes(4); }

// encode_truncate(text, 123): UTF-8 encode, cut to at most n octets on a code point boundary
function encodeTruncate(text, n) {
  let b = Buffer.from(text, 'utf8');
  if (b.length <= n) return b;
  let end = n;
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

function eventEquals(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]; const y = b[i];
    if (Buffer.isBuffer(x) || Buffer.isBuffer(y)) {
      if (!Buffer.isBuffer(x) || !Buffer.isBuffer(y) || !x.equals(y)) return false;
    } else if (x !== y) return false;
  }
  return true;
}

function eventsEqual(received, expected) {
  if (received.length !== expected.length) return false;
  for (let i = 0; i < received.length; i++) if (!eventEquals(received[i], expected[i])) return false;
  return true;
}

function describeEvents(events) {
  return '[' + events.map((e) => {
    const parts = e.map((x) => {
      if (Buffer.isBuffer(x)) {
        if (x.length > 40) return `<${x.length} octets ${x.subarray(0, 16).toString('hex')}...>`;
        return isValidUtf8(x) && !/[\x00-\x1f]/.test(x.toString('utf8')) ? JSON.stringify(x.toString('utf8')) : `0x${x.toString('hex')}`;
      }
      return JSON.stringify(x);
    });
    return '(' + parts.join(', ') + ')';
  }).join(', ') + ']';
}

// ---- Case (case.py) --------------------------------------------------------------------------
// A case definition (see cases.js) is { id, description, expectation, init?, onOpen,
// onMessage?, onPong?, afterConnectionLost?, timeout? }; the hooks get the Case instance `t`
// whose fields mirror case.py (t.p is the protocol, t.expected, t.expectedClose, t.received ...).
class Case {
  constructor(def, protocol) {
    this.def = def;
    this.p = protocol;
    this.received = [];
    this.expected = new Map(); // verdict -> list of events; insertion order = Python dict order used here
    this.expectedClose = {};
    this.behavior = FAILED;
    this.behaviorClose = FAILED;
    this.result = 'Actual events differ from any expected.';
    this.resultClose = 'TCP connection was dropped without close handshake';
    this.reportTime = false;
    this.suppressClose = false;
    this.passed = false;
    if (def.init) def.init(this);
  }

  onOpen() { this.def.onOpen(this); }

  onMessage(msg, binary) {
    if (this.def.onMessage) { this.def.onMessage(this, msg, binary); return; }
    this.received.push(['message', msg, binary]);
    this.finishWhenDone();
  }

  onPong(payload) {
    if (this.def.onPong) { this.def.onPong(this, payload); return; }
    this.received.push(['pong', payload]);
    this.finishWhenDone();
  }

  compare(a, b) { return eventsEqual(a, b); }

  onConnectionLost(failedByMe) {
    for (const [e, events] of this.expected) {
      if (this.compare(this.received, events)) {
        this.behavior = e;
        this.passed = true;
        this.result = 'Actual events match at least one expected.';
        break;
      }
    }
    const p = this.p;
    if (p.connectionWasOpen) {
      const ec = this.expectedClose;
      if (ec.closedByMe !== p.closedByMe) {
        this.behaviorClose = FAILED;
        this.resultClose = 'The connection was failed by the wrong endpoint';
      } else if (ec.requireClean && !p.wasClean) {
        this.behaviorClose = UNCLEAN;
        this.resultClose = 'The spec requires the connection to be failed cleanly here';
      } else if (p.remoteCloseCode !== null && !ec.closeCode.includes(p.remoteCloseCode)) {
        this.behaviorClose = WRONG_CODE;
        this.resultClose = `The close code should have been ${ec.closeCode.join(',')} or empty`;
      } else if (p.droppedByMe) { // we are a client: the server should drop the TCP connection
        this.behaviorClose = FAILED_BY_CLIENT;
        this.resultClose = 'It is preferred that the server close the TCP connection';
      } else {
        this.behaviorClose = OK;
        this.resultClose = 'Connection was properly closed';
      }
      // for UTF-8 tests, closing by the wrong endpoint means the peer did not detect the
      // invalid UTF-8 at all
      if (ec.closedByWrongEndpointIsFatal && ec.closedByMe !== p.closedByMe) {
        this.behavior = FAILED;
        this.result = `${this.result} But the connection was failed by the wrong endpoint (fatal here: the peer did not detect the invalid payload).`;
      }
    } else {
      this.behaviorClose = FAILED;
      this.resultClose = 'The WebSocket opening handshake was never completed!';
    }
    if (this.def.afterConnectionLost) this.def.afterConnectionLost(this, failedByMe);
  }

  // If we match *every* expected outcome, start the closing handshake (case.py's rule: with
  // several expected outcomes this never fires and the peer or a timer has to close).
  finishWhenDone() {
    for (const events of this.expected.values()) {
      if (!this.compare(this.received, events)) return;
    }
    if (this.expectedClose.closedByMe && !this.suppressClose) this.p.sendClose(this.expectedClose.closeCode[0]);
  }
}

// The usual tail of 7.x cases: a wrong close code fails the case itself.
function wrongCodeIsFatal(t) {
  if (t.behaviorClose === WRONG_CODE) {
    t.behavior = FAILED;
    t.passed = false;
    t.result = t.resultClose;
  }
}

// ---- the protocol (autobahn-python WebSocketClientProtocol + FuzzingProtocol) ---------------
class FuzzingProtocol {
  constructor(url, def, options = {}) {
    this.url = new URL(url);
    this.options = { ...DEFAULT_OPTIONS, ...options };
    this.def = def;

    this.state = STATE_CONNECTING;
    this.data = Buffer.alloc(0);
    this.sendQueue = [];
    this.sendQueueHead = 0;
    this.triggered = false;
    this.corked = false;
    this.timers = new Set();

    this.connectionWasOpen = false;
    this.closedByMe = false;
    this.failedByMe = false;
    this.droppedByMe = false;
    this.wasClean = false;
    this.wasNotCleanReason = null;
    this.wasServerConnectionDropTimeout = false;
    this.wasOpenHandshakeTimeout = false;
    this.wasCloseHandshakeTimeout = false;
    this.localCloseCode = null;
    this.localCloseReason = null;
    this.remoteCloseCode = null;
    this.remoteCloseReason = null;
    this.harnessTimeout = false;

    this.closeHandshakeTimeoutCall = null;
    this.serverConnectionDropTimeoutCall = null;
    this.openHandshakeTimeoutCall = null;

    // receiving state
    this.currentFrame = null;
    this.insideMessage = false;
    this.utf8validator = new Utf8Validator();
    this.utf8validateIncomingCurrentMessage = false;
    this.utf8validateLast = [true, true, 0, 0];
    this.messageData = null;
    this.frameData = null;
    this.messageIsBinary = false;
    this.controlFrameData = null;

    // sending state (streaming API)
    this.sendState = 'GROUND';
    this.autoFragmentSize = 0;
    this.txFrameStats = {};
    this.rxFrameStats = {};
    this.log = []; // short wire log of frames/events, for failure reports

    this.case = new Case(def, this);
  }

  // ---- timers ----
  callLater(seconds, fn) {
    const h = setTimeout(() => { this.timers.delete(h); fn(); }, Math.max(0, seconds * 1000));
    this.timers.add(h);
    return { cancel: () => { clearTimeout(h); this.timers.delete(h); } };
  }

  clampWait(seconds) { return Math.min(seconds, this.options.maxWait); }

  continueLater(delay, fun, tag) {
    this.log.push(`CT ${delay}${tag ? ' ' + tag : ''}`);
    this.callLater(delay, () => { if (this.state !== STATE_CLOSED) this.guard(fun); });
  }

  killAfter(delay) {
    this.log.push(`KL ${delay}`);
    this.callLater(this.clampWait(delay), () => {
      if (this.state !== STATE_CLOSED) { this.log.push('KLE'); this.failConnection(); }
    });
  }

  closeAfter(delay) {
    this.log.push(`TI ${delay}`);
    this.callLater(this.clampWait(delay), () => {
      if (this.state !== STATE_CLOSED) { this.log.push('TIE'); this.sendClose(); }
    });
  }

  // A bug in a case hook must not take the whole run down: record it and fail the case.
  guard(fn) {
    try {
      fn();
    } catch (err) {
      this.harnessError = err && err.stack ? err.stack : String(err);
      this.log.push(`HARNESS ERROR ${err && err.message}`);
      this.dropConnection(true);
    }
  }

  // ---- running ----
  run() {
    return new Promise((resolve) => {
      this.resolve = resolve;
      this.startTime = Date.now();
      const port = Number(this.url.port || (this.url.protocol === 'wss:' ? 443 : 80));
      const sock = net.connect({ host: this.url.hostname, port });
      this.socket = sock;
      sock.setNoDelay(true);
      sock.on('connect', () => this.sendHandshake());
      sock.on('data', (d) => this.guard(() => this.dataReceived(d)));
      sock.on('error', (err) => { this.socketError = err.code || err.message; });
      sock.on('close', () => this.connectionLost());
      this.openHandshakeTimeoutCall = this.callLater(this.options.openHandshakeTimeout, () => this.onOpenHandshakeTimeout());
      // harness safety net: no case may run longer than this
      const cap = this.def.timeout || 15;
      this.callLater(cap, () => {
        if (this.state !== STATE_CLOSED) {
          this.harnessTimeout = true;
          this.wasNotCleanReason = `harness: case did not finish within ${cap} s`;
          this.log.push('HARNESS TIMEOUT');
          this.dropConnection(true);
        }
      });
    });
  }

  sendHandshake() {
    this.key = crypto.randomBytes(16).toString('base64');
    const path = (this.url.pathname || '/') + (this.url.search || '');
    const host = this.url.host;
    const req = `GET ${path} HTTP/1.1\r\n` +
      `User-Agent: AutobahnTestSuite-equivalent (wshub e2e)\r\n` +
      `Host: ${host}\r\n` +
      'Upgrade: WebSocket\r\n' +
      'Connection: Upgrade\r\n' +
      'Pragma: no-cache\r\n' +
      'Cache-Control: no-cache\r\n' +
      `Sec-WebSocket-Key: ${this.key}\r\n` +
      'Sec-WebSocket-Version: 13\r\n\r\n';
    this.socket.write(req);
  }

  failHandshake(reason) {
    this.wasNotCleanReason = reason;
    this.log.push(`handshake failed: ${reason}`);
    this.dropConnection(true);
  }

  processHandshake() {
    const end = this.data.indexOf('\r\n\r\n');
    if (end < 0) {
      if (this.data.length > 65536) this.failHandshake('HTTP response header too large');
      return;
    }
    const head = this.data.subarray(0, end).toString('latin1');
    this.httpResponse = head;
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3})/.exec(lines[0]);
    if (!m) return this.failHandshake(`bad HTTP response status line '${lines[0]}'`);
    if (m[1] !== '101') return this.failHandshake(`WebSocket connection upgrade failed (${lines[0]})`);
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i <= 0) continue;
      const k = l.slice(0, i).trim().toLowerCase();
      const v = l.slice(i + 1).trim();
      headers[k] = headers[k] !== undefined ? `${headers[k]}, ${v}` : v;
    }
    if (!headers.upgrade || headers.upgrade.toLowerCase() !== 'websocket') return this.failHandshake(`HTTP Upgrade header missing or wrong ('${headers.upgrade}')`);
    if (!headers.connection || !headers.connection.toLowerCase().split(',').map((x) => x.trim()).includes('upgrade')) return this.failHandshake(`HTTP Connection header missing or wrong ('${headers.connection}')`);
    const accept = crypto.createHash('sha1').update(this.key + WS_GUID).digest('base64');
    if (headers['sec-websocket-accept'] !== accept) return this.failHandshake(`HTTP Sec-WebSocket-Accept bogus ('${headers['sec-websocket-accept']}')`);
    if (headers['sec-websocket-extensions']) return this.failHandshake(`server accepted an extension we did not offer ('${headers['sec-websocket-extensions']}')`);
    if (headers['sec-websocket-protocol']) return this.failHandshake(`server selected a subprotocol we did not offer ('${headers['sec-websocket-protocol']}')`);

    this.data = this.data.subarray(end + 4);
    if (this.openHandshakeTimeoutCall) { this.openHandshakeTimeoutCall.cancel(); this.openHandshakeTimeoutCall = null; }
    this.state = STATE_OPEN;
    this.connectionWasOpen = true;
    this.caseStart = Date.now();
    this.case.onOpen();
    if (this.data.length > 0) this.consumeData();
  }

  onOpenHandshakeTimeout() {
    this.openHandshakeTimeoutCall = null;
    if (this.state === STATE_CONNECTING) {
      this.wasClean = false;
      this.wasNotCleanReason = 'WebSocket opening handshake timeout (peer did not finish the opening handshake in time)';
      this.wasOpenHandshakeTimeout = true;
      this.dropConnection(true);
    }
  }

  dataReceived(d) {
    if (this.state === STATE_CLOSED) return; // ignore any data received after WS was closed
    this.data = this.data.length ? Buffer.concat([this.data, d]) : d;
    this.consumeData();
  }

  consumeData() {
    if (this.state === STATE_OPEN || this.state === STATE_CLOSING) {
      while (this.processData() && this.state !== STATE_CLOSED) { /* keep going */ }
    } else if (this.state === STATE_CONNECTING) {
      this.processHandshake();
    }
  }

  // ---- frame decoder (autobahn-python processData, failByDrop = false) ----
  processData() {
    const bufferedLen = this.data.length;
    if (this.currentFrame === null) {
      if (bufferedLen < 2) return false;
      let b = this.data[0];
      const frameFin = (b & 0x80) !== 0;
      const frameRsv = (b & 0x70) >> 4;
      const frameOpcode = b & 0x0f;
      b = this.data[1];
      const frameMasked = (b & 0x80) !== 0;
      const frameLen1 = b & 0x7f;

      if (frameRsv !== 0) this.protocolViolation(`RSV = ${frameRsv} and no extension negotiated`);
      if (frameMasked) this.protocolViolation('masked server-to-client frame');
      if (frameOpcode > 7) {
        if (!frameFin) this.protocolViolation('fragmented control frame');
        if (frameLen1 > 125) this.protocolViolation('control frame with payload length > 125 octets');
        if (![8, 9, 10].includes(frameOpcode)) this.protocolViolation(`control frame using reserved opcode ${frameOpcode}`);
        if (frameOpcode === 8 && frameLen1 === 1) this.protocolViolation('received close control frame with payload len 1');
      } else {
        if (![0, 1, 2].includes(frameOpcode)) this.protocolViolation(`data frame using reserved opcode ${frameOpcode}`);
        if (!this.insideMessage && frameOpcode === 0) this.protocolViolation('received continuation data frame outside fragmented message');
        if (this.insideMessage && frameOpcode !== 0) this.protocolViolation('received non-continuation data frame while inside fragmented message');
      }
      if (this.state === STATE_CLOSED) return false;
      const maskLen = frameMasked ? 4 : 0;
      const headerLen = frameLen1 < 126 ? 2 + maskLen : frameLen1 === 126 ? 4 + maskLen : 10 + maskLen;
      if (bufferedLen < headerLen) return false;
      let i = 2;
      let payloadLen;
      if (frameLen1 === 126) {
        payloadLen = this.data.readUInt16BE(2);
        if (payloadLen < 126) this.protocolViolation('invalid data frame length (not using minimal length encoding)');
        i += 2;
      } else if (frameLen1 === 127) {
        const big = this.data.readBigUInt64BE(2);
        if (big > 0x7fffffffffffffffn) this.protocolViolation('invalid data frame length (>2^63)');
        if (big < 65536n) this.protocolViolation('invalid data frame length (not using minimal length encoding)');
        payloadLen = big > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(big);
        i += 8;
      } else {
        payloadLen = frameLen1;
      }
      if (this.state === STATE_CLOSED) return false;
      let mask = null;
      if (frameMasked) { mask = Buffer.from(this.data.subarray(i, i + 4)); i += 4; }
      this.data = this.data.subarray(i);
      this.currentFrame = { opcode: frameOpcode, fin: frameFin, rsv: frameRsv, length: payloadLen, mask, pointer: 0 };
      this.rxFrameStats[frameOpcode] = (this.rxFrameStats[frameOpcode] || 0) + 1;
      this.onFrameBegin();
      return payloadLen === 0 || this.data.length > 0;
    }

    const f = this.currentFrame;
    const rest = f.length - f.pointer;
    let data;
    if (bufferedLen >= rest) {
      data = this.data.subarray(0, rest);
      this.data = this.data.subarray(rest);
    } else {
      data = this.data;
      this.data = Buffer.alloc(0);
    }
    let payload = data;
    if (data.length > 0 && f.mask) payload = maskInPlace(Buffer.from(data), f.mask, f.pointer);
    f.pointer += data.length;
    if (this.onFrameData(payload) === false) return false;
    if (this.state === STATE_CLOSED) return false;
    if (f.pointer === f.length) {
      if (this.onFrameEnd() === false) return false;
    }
    return this.data.length > 0;
  }

  onFrameBegin() {
    const f = this.currentFrame;
    if (f.opcode > 7) {
      this.controlFrameData = [];
    } else {
      if (!this.insideMessage) {
        this.insideMessage = true;
        if (f.opcode === 1) {
          this.utf8validator.reset();
          this.utf8validateIncomingCurrentMessage = true;
          this.utf8validateLast = [true, true, 0, 0];
        } else {
          this.utf8validateIncomingCurrentMessage = false;
        }
        // onMessageBegin
        this.messageIsBinary = f.opcode === 2;
        this.messageData = [];
      }
      // onMessageFrameBegin
      this.frameData = [];
    }
  }

  onFrameData(payload) {
    const f = this.currentFrame;
    if (f.opcode > 7) {
      this.controlFrameData.push(payload);
      return undefined;
    }
    if (this.utf8validateIncomingCurrentMessage) {
      this.utf8validateLast = this.utf8validator.validate(payload);
      if (!this.utf8validateLast[0]) {
        if (this.invalidPayload(`encountered invalid UTF-8 while processing text message at payload octet index ${this.utf8validateLast[3]}`)) return false;
      }
    }
    if (!this.failedByMe && this.frameData) this.frameData.push(payload);
    return undefined;
  }

  onFrameEnd() {
    const f = this.currentFrame;
    if (f.opcode > 7) {
      this.log.push(`RF opcode=${f.opcode} len=${f.length}`);
      this.processControlFrame();
    } else {
      this.log.push(`RF opcode=${f.opcode} fin=${f.fin ? 1 : 0} len=${f.length}`);
      // onMessageFrameEnd
      if (!this.failedByMe && this.messageData && this.frameData) this.messageData.push(...this.frameData);
      this.frameData = null;
      if (f.fin) {
        if (this.utf8validateIncomingCurrentMessage && !this.utf8validateLast[1]) {
          if (this.invalidPayload(`UTF-8 text message payload ended within Unicode code point at payload octet index ${this.utf8validateLast[3]}`)) return false;
        }
        // onMessageEnd
        if (!this.failedByMe && this.messageData) {
          const payload = Buffer.concat(this.messageData);
          this.messageData = null;
          this.log.push(`RM ${this.messageIsBinary ? 'binary' : 'text'} len=${payload.length}`);
          this.case.onMessage(payload, this.messageIsBinary);
        }
        this.messageData = null;
        this.insideMessage = false;
      }
    }
    this.currentFrame = null;
    return undefined;
  }

  processControlFrame() {
    const payload = Buffer.concat(this.controlFrameData);
    this.controlFrameData = null;
    const op = this.currentFrame.opcode;
    if (op === 8) {
      let code = null;
      let reasonRaw = null;
      if (payload.length > 1) {
        code = payload.readUInt16BE(0);
        if (payload.length > 2) reasonRaw = payload.subarray(2);
      }
      if (this.onCloseFrame(code, reasonRaw)) return false;
    } else if (op === 9) {
      // autobahn: answer pings while open; pings are not reported to the case
      if (this.state === STATE_OPEN) this.sendPong(payload);
    } else if (op === 10) {
      this.case.onPong(payload);
    }
    return true;
  }

  onCloseFrame(code, reasonRaw) {
    this.log.push(`RC code=${code} reason=${reasonRaw ? reasonRaw.toString('hex') : '-'}`);
    this.remoteCloseCode = null;
    this.remoteCloseReason = null;
    if (code !== null && (code < 1000 || (code >= 1000 && code <= 2999 && !CLOSE_STATUS_CODES_ALLOWED.has(code)) || code >= 5000)) {
      if (this.protocolViolation(`invalid close code ${code}`)) return true;
      this.remoteCloseCode = CLOSE_STATUS_CODE_NORMAL;
    } else {
      this.remoteCloseCode = code;
    }
    if (reasonRaw !== null) {
      if (!isValidUtf8(reasonRaw)) {
        if (this.invalidPayload('invalid close reason (non-UTF8 payload)')) return true;
      } else {
        this.remoteCloseReason = reasonRaw.toString('utf8');
      }
    }
    if (this.state === STATE_CLOSING) {
      // reply to our close
      if (this.closeHandshakeTimeoutCall) { this.closeHandshakeTimeoutCall.cancel(); this.closeHandshakeTimeoutCall = null; }
      this.wasClean = true;
      // we are a client: the server should drop the TCP connection; if it does not, we do
      if (this.options.serverConnectionDropTimeout > 0) {
        this.serverConnectionDropTimeoutCall = this.callLater(this.options.serverConnectionDropTimeout, () => this.onServerConnectionDropTimeout());
      }
    } else if (this.state === STATE_OPEN) {
      // the peer initiates the closing handshake: reply with a normal close
      this.wasClean = true;
      this.sendCloseFrame(CLOSE_STATUS_CODE_NORMAL, null, true);
    } else if (this.state === STATE_CLOSED) {
      this.wasClean = false;
    }
    return false;
  }

  onServerConnectionDropTimeout() {
    this.serverConnectionDropTimeoutCall = null;
    if (this.state !== STATE_CLOSED) {
      this.wasClean = false;
      this.wasNotCleanReason = 'WebSocket closing handshake timeout (server did not drop TCP connection in time)';
      this.wasServerConnectionDropTimeout = true;
      this.dropConnection(true);
    }
  }

  onCloseHandshakeTimeout() {
    this.closeHandshakeTimeoutCall = null;
    if (this.state !== STATE_CLOSED) {
      this.wasClean = false;
      this.wasNotCleanReason = 'WebSocket closing handshake timeout (peer did not answer our close in time)';
      this.wasCloseHandshakeTimeout = true;
      this.dropConnection(true);
    }
  }

  dropConnection(abort = false) {
    if (this.state === STATE_CLOSED) return;
    this.log.push(`DROP abort=${abort}`);
    this.droppedByMe = true;
    this.state = STATE_CLOSED;
    if (!this.socket) return;
    if (this.corked) { this.corked = false; this.socket.uncork(); }
    if (abort) this.socket.destroy();
    else this.socket.destroySoon();
  }

  failConnection(code = CLOSE_STATUS_CODE_GOING_AWAY, reason = 'going away') {
    if (this.state === STATE_CLOSED) return;
    this.log.push(`FAIL ${code} ${reason}`);
    if (!this.failReason) this.failReason = `${code} ${reason}`;
    this.failedByMe = true;
    // failByDrop = false: perform the closing handshake, or drop when already closing
    if (this.state !== STATE_CLOSING) this.sendCloseFrame(code, encodeTruncate(reason, 123), false);
    else this.dropConnection(false);
  }

  // returns true when further processing should stop (only with failByDrop, never here)
  protocolViolation(reason) { this.failConnection(CLOSE_STATUS_CODE_PROTOCOL_ERROR, reason); return false; }

  invalidPayload(reason) { this.failConnection(CLOSE_STATUS_CODE_INVALID_PAYLOAD, reason); return false; }

  connectionLost() {
    if (this.finished) return;
    this.finished = true;
    for (const h of this.timers) clearTimeout(h);
    this.timers.clear();
    if (this.state !== STATE_CLOSED) this.state = STATE_CLOSED;
    if (!this.wasClean && !this.droppedByMe && this.wasNotCleanReason === null) {
      this.wasNotCleanReason = 'peer dropped the TCP connection without previous WebSocket closing handshake';
    }
    const c = this.case;
    this.guard(() => c.onConnectionLost(this.failedByMe));
    this.resolve(this.makeResult());
  }

  makeResult() {
    const c = this.case;
    let verdict = c.behavior;
    let why = c.result;
    // Autobahn's report colours a FAILED or UNCLEAN close column red as well: count it.
    if (verdict !== FAILED && (c.behaviorClose === FAILED || c.behaviorClose === UNCLEAN)) {
      verdict = FAILED;
      why = `close behaviour ${c.behaviorClose}: ${c.resultClose}`;
    }
    if (this.harnessTimeout) {
      verdict = FAILED;
      why = this.wasNotCleanReason;
    }
    if (this.harnessError) {
      verdict = FAILED;
      why = `harness error: ${this.harnessError}`;
    }
    const expected = {};
    for (const [k, v] of c.expected) expected[k] = describeEvents(v);
    return {
      id: this.def.id,
      description: this.def.description,
      expectation: this.def.expectation,
      verdict,
      why,
      behavior: c.behavior,
      behaviorClose: c.behaviorClose,
      result: c.result,
      resultClose: c.resultClose,
      expected,
      expectedClose: c.expectedClose,
      received: describeEvents(c.received),
      closedByMe: this.closedByMe,
      failedByMe: this.failedByMe,
      droppedByMe: this.droppedByMe,
      wasClean: this.wasClean,
      wasNotCleanReason: this.wasNotCleanReason,
      wasServerConnectionDropTimeout: this.wasServerConnectionDropTimeout,
      wasOpenHandshakeTimeout: this.wasOpenHandshakeTimeout,
      wasCloseHandshakeTimeout: this.wasCloseHandshakeTimeout,
      localCloseCode: this.localCloseCode,
      remoteCloseCode: this.remoteCloseCode,
      remoteCloseReason: this.remoteCloseReason,
      failReason: this.failReason || null,
      socketError: this.socketError || null,
      harnessTimeout: this.harnessTimeout,
      harnessError: this.harnessError || null,
      duration: Date.now() - this.startTime,
      reportTime: c.reportTime,
      wirelog: this.log.slice(-40),
    };
  }

  // ---- sending (autobahn-python sendData/sendFrame/...) ----
  writeRaw(data, direct) {
    const s = this.socket;
    if (!s || s.destroyed) return;
    if (direct) {
      // coalesce plain writes of one tick (keeps ordering; the OS chops as it likes anyway)
      if (!this.corked) {
        this.corked = true;
        s.cork();
        process.nextTick(() => { if (this.corked) { this.corked = false; s.uncork(); } });
      }
    } else if (this.corked) {
      // a queued (synced/chopped) write: put everything before it on the wire first
      this.corked = false;
      s.uncork();
    }
    s.write(data);
  }

  sendData(data, sync = false, chopsize = null) {
    if (chopsize && chopsize > 0) {
      const n = data.length;
      let i = 0;
      let done = false;
      while (!done) {
        let j = i + chopsize;
        if (j >= n) { done = true; j = n; }
        this.sendQueue.push(data.subarray(i, j));
        i += chopsize;
      }
      this.trigger();
    } else if (sync || this.sendQueue.length - this.sendQueueHead > 0) {
      this.sendQueue.push(data);
      this.trigger();
    } else {
      this.writeRaw(data, true);
    }
  }

  trigger() {
    if (!this.triggered) {
      this.triggered = true;
      this.sendQueued();
    }
  }

  // one queued write, then re-enter the event loop so that it goes out on its own
  sendQueued() {
    if (this.sendQueueHead < this.sendQueue.length) {
      const d = this.sendQueue[this.sendQueueHead];
      this.sendQueue[this.sendQueueHead] = null;
      this.sendQueueHead++;
      if (this.sendQueueHead === this.sendQueue.length) { this.sendQueue = []; this.sendQueueHead = 0; }
      if (this.state !== STATE_CLOSED) this.writeRaw(d, false);
      setImmediate(() => this.sendQueued());
    } else {
      this.triggered = false;
    }
  }

  sendFrame({ opcode, payload, fin = true, rsv = 0, mask = null, payloadLen = null, chopsize = null, sync = false }) {
    let pl = toBuf(payload);
    if (payloadLen !== null && payloadLen !== undefined) pl = repeatPayload(pl, payloadLen);
    const l = pl.length;
    const b0 = (fin ? 0x80 : 0) | ((rsv % 8) << 4) | (opcode % 128);
    const m = mask ? toBuf(mask) : randomMask();
    const plm = l > 0 ? maskInPlace(Buffer.from(pl), m) : pl;
    let header;
    if (l <= 125) {
      header = Buffer.from([b0, 0x80 | l]);
    } else if (l <= 0xffff) {
      header = Buffer.alloc(4);
      header[0] = b0; header[1] = 0x80 | 126; header.writeUInt16BE(l, 2);
    } else {
      header = Buffer.alloc(10);
      header[0] = b0; header[1] = 0x80 | 127; header.writeBigUInt64BE(BigInt(l), 2);
    }
    this.txFrameStats[opcode] = (this.txFrameStats[opcode] || 0) + 1;
    this.log.push(`TF opcode=${opcode} fin=${fin ? 1 : 0} rsv=${rsv} len=${l}${chopsize ? ` chop=${chopsize}` : ''}${sync ? ' sync' : ''}`);
    this.sendData(Buffer.concat([header, m, plm]), sync, chopsize);
  }

  sendPing(payload) {
    if (this.state !== STATE_OPEN) return;
    this.sendFrame({ opcode: 9, payload });
  }

  sendPong(payload) {
    if (this.state !== STATE_OPEN) return;
    this.sendFrame({ opcode: 10, payload });
  }

  sendCloseFrame(code = null, reasonUtf8 = null, isReply = false) {
    if (this.state !== STATE_OPEN) return; // ignored while closing/closed
    const parts = [];
    if (code !== null && code !== undefined) { const b = Buffer.alloc(2); b.writeUInt16BE(code & 0xffff); parts.push(b); }
    if (reasonUtf8 !== null && reasonUtf8 !== undefined) parts.push(toBuf(reasonUtf8));
    this.sendFrame({ opcode: 8, payload: Buffer.concat(parts) });
    this.state = STATE_CLOSING;
    this.closedByMe = !isReply;
    this.localCloseCode = code;
    this.localCloseReason = reasonUtf8;
    if (this.closedByMe && this.options.closeHandshakeTimeout > 0) {
      this.closeHandshakeTimeoutCall = this.callLater(this.options.closeHandshakeTimeout, () => this.onCloseHandshakeTimeout());
    }
  }

  sendClose(code = null, reason = null) {
    if (code !== null) {
      if (!Number.isInteger(code)) throw new Error(`invalid type for close code: ${code}`);
      if (code !== 1000 && !(code >= 3000 && code <= 4999)) throw new Error(`invalid close code ${code} (must be 1000 or from [3000, 4999])`);
    }
    let reasonUtf8 = null;
    if (reason !== null) {
      if (code === null) throw new Error('close reason without close code');
      reasonUtf8 = encodeTruncate(reason, 123);
    }
    this.sendCloseFrame(code, reasonUtf8, false);
  }

  sendMessage(payload, isBinary = false, fragmentSize = null, sync = false) {
    if (this.state !== STATE_OPEN) return;
    const pl = toBuf(payload);
    const opcode = isBinary ? 2 : 1;
    let pfs = null;
    if (fragmentSize !== null && fragmentSize !== undefined) pfs = fragmentSize;
    else if (this.autoFragmentSize > 0) pfs = this.autoFragmentSize;
    if (pfs === null || pl.length <= pfs) {
      this.sendFrame({ opcode, payload: pl, sync });
      return;
    }
    if (pfs < 1) throw new Error(`payload fragment size must be at least 1 (was ${pfs})`);
    const n = pl.length;
    let i = 0;
    let done = false;
    let first = true;
    while (!done) {
      let j = i + pfs;
      // as autobahn: a payload that is an exact multiple of pfs ends with an empty final fragment
      if (j > n) { done = true; j = n; }
      this.sendFrame({ opcode: first ? opcode : 0, payload: pl.subarray(i, j), fin: done, sync });
      first = false;
      i += pfs;
    }
  }

  // streaming API: one frame whose payload is written in pieces
  beginMessage(isBinary = false) {
    if (this.state !== STATE_OPEN) return;
    if (this.sendState !== 'GROUND') throw new Error('beginMessage invalid in current sending state');
    this.sendMessageOpcode = isBinary ? 2 : 1;
    this.sendState = 'MESSAGE_BEGIN';
  }

  beginMessageFrame(length) {
    if (this.state !== STATE_OPEN) return;
    if (this.sendState !== 'MESSAGE_BEGIN' && this.sendState !== 'INSIDE_MESSAGE') throw new Error('beginMessageFrame invalid in current sending state');
    this.sendMessageFrameLength = length;
    this.sendMessageFrameMask = randomMask();
    this.sendMessageFramePointer = 0;
    let b0 = 0; // FIN = false: with streaming we do not know when the message ends
    if (this.sendState === 'MESSAGE_BEGIN') b0 |= this.sendMessageOpcode;
    let header;
    if (length <= 125) header = Buffer.from([b0, 0x80 | length]);
    else if (length <= 0xffff) { header = Buffer.alloc(4); header[0] = b0; header[1] = 0x80 | 126; header.writeUInt16BE(length, 2); }
    else { header = Buffer.alloc(10); header[0] = b0; header[1] = 0x80 | 127; header.writeBigUInt64BE(BigInt(length), 2); }
    this.log.push(`TF(stream) opcode=${b0 & 0x0f} fin=0 len=${length}`);
    this.sendData(Buffer.concat([header, this.sendMessageFrameMask]));
    this.sendState = 'INSIDE_MESSAGE_FRAME';
  }

  sendMessageFrameData(payload, sync = false) {
    if (this.state !== STATE_OPEN) return undefined;
    if (this.sendState !== 'INSIDE_MESSAGE_FRAME') throw new Error('sendMessageFrameData invalid in current sending state');
    let pl = toBuf(payload);
    const left = this.sendMessageFrameLength - this.sendMessageFramePointer;
    let rest;
    if (pl.length > left) { rest = -(pl.length - left); pl = pl.subarray(0, left); } else rest = left - pl.length;
    const plm = maskInPlace(Buffer.from(pl), this.sendMessageFrameMask, this.sendMessageFramePointer);
    this.sendMessageFramePointer += pl.length;
    this.log.push(`TD(stream) len=${pl.length}`);
    this.sendData(plm, sync);
    if (this.sendMessageFramePointer >= this.sendMessageFrameLength) this.sendState = 'INSIDE_MESSAGE';
    return rest;
  }

  endMessage() {
    if (this.state !== STATE_OPEN) return;
    this.sendFrame({ opcode: 0, payload: Buffer.alloc(0), fin: true });
    this.sendState = 'GROUND';
  }
}

// Runs one case definition against a ws:// URL. Resolves to the result record.
function runCase(def, url, options) {
  const p = new FuzzingProtocol(url, def, options);
  return p.run();
}

// Runs case definitions with at most `concurrency` connections at a time. onResult(result) is
// called as each case finishes; resolves to the results in case order.
async function runCases(defs, url, { concurrency = 4, options, onResult } = {}) {
  const results = new Array(defs.length);
  let next = 0;
  async function worker() {
    while (next < defs.length) {
      const i = next++;
      const r = await runCase(defs[i], url, options);
      results[i] = r;
      if (onResult) onResult(r, i);
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, defs.length)) }, worker));
  return results;
}

function summarize(results) {
  const counts = Object.fromEntries(VERDICTS.map((v) => [v, 0]));
  for (const r of results) counts[r.verdict] = (counts[r.verdict] || 0) + 1;
  return counts;
}

function formatResult(r) {
  const lines = [
    `case ${r.id}: ${r.verdict} — ${r.why}`,
    `  description: ${r.description.replace(/<br>/g, ' ')}`,
    `  expectation: ${r.expectation}`,
    `  behavior=${r.behavior} behaviorClose=${r.behaviorClose} (${r.resultClose})`,
    `  expected: ${JSON.stringify(r.expected)} expectedClose: ${JSON.stringify(r.expectedClose)}`,
    `  received: ${r.received}`,
    `  closedByMe=${r.closedByMe} failedByMe=${r.failedByMe} droppedByMe=${r.droppedByMe} wasClean=${r.wasClean}` +
      ` remoteCloseCode=${r.remoteCloseCode} localCloseCode=${r.localCloseCode}` +
      (r.wasNotCleanReason ? ` notClean="${r.wasNotCleanReason}"` : '') +
      (r.failReason ? ` failedBecause="${r.failReason}"` : '') +
      (r.socketError ? ` socketError=${r.socketError}` : ''),
    `  wire (last events): ${r.wirelog.join(' | ')}`,
  ];
  return lines.join('\n');
}

module.exports = {
  OK, NON_STRICT, FAILED, WRONG_CODE, UNCLEAN, FAILED_BY_CLIENT, INFORMATIONAL, UNIMPLEMENTED, VERDICTS,
  STATE_CONNECTING, STATE_OPEN, STATE_CLOSING, STATE_CLOSED,
  CLOSE_STATUS_CODE_NORMAL, CLOSE_STATUS_CODE_GOING_AWAY, CLOSE_STATUS_CODE_PROTOCOL_ERROR,
  CLOSE_STATUS_CODE_UNSUPPORTED_DATA, CLOSE_STATUS_CODE_INVALID_PAYLOAD,
  Utf8Validator, isValidUtf8, Case, FuzzingProtocol, wrongCodeIsFatal,
  runCase, runCases, summarize, formatResult, DEFAULT_OPTIONS,
};
