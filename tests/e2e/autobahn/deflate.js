'use strict';
// Autobahn|Testsuite's permessage-deflate cases 12.* and 13.* (case/case12_x_x.py): 216 cases,
// each sending COUNT messages of one size taken from a test data set, one at a time, every
// echo checked (type, length, SHA-1) before the next is sent; then a clean close 1000 by us.
//   12.1-12.5  one data set each, the default offer (Autobahn's PerMessageDeflateOffer():
//              "permessage-deflate; client_no_context_takeover; client_max_window_bits")
//   13.1-13.7  the JSON data set, the offers of DEFLATE_PARAMS (server_no_context_takeover,
//              server_max_window_bits 8/15, and three offers at once in 13.7)
//   x.y.1-18   MSG_SIZES: 16 B ... 128 KiB, the last eight auto-fragmented (256 ... 32768)
//
// The client is the `ws` package (a complete RFC 7692 implementation: it checks the server's
// response against its offer, inflates with the negotiated window, and fails the connection
// on RSV1 where it does not belong or a stream it cannot inflate). Differences from upstream,
// see README.md: the data sets are generated here (same kind, size and text/binary type: the
// originals are not redistributable with this repository), the message count is
// AUTOBAHN_DEFLATE_COUNT (default 20; upstream 1000), and an auto-fragmented message is split
// before compression (each fragment compressed and flushed, RSV1 on the first), where
// autobahn-python splits the compressed payload.

const crypto = require('node:crypto');
const zlib = require('node:zlib');
const WebSocket = require('ws');

const COUNT = Number(process.env.AUTOBAHN_DEFLATE_COUNT || 20);
const MSG_SIZES = [
  [16, 60, 0], [64, 60, 0], [256, 120, 0], [1024, 240, 0], [4096, 480, 0], [8192, 480, 0],
  [16384, 480, 0], [32768, 480, 0], [65536, 480, 0], [131072, 480, 0],
  [8192, 480, 256], [16384, 480, 256], [32768, 480, 256], [65536, 480, 256], [131072, 480, 256],
  [131072, 480, 1024], [131072, 480, 4096], [131072, 480, 32768],
];

// ---- test data (deterministic) ---------------------------------------------------------------
function prng(seed) {
  let x = seed >>> 0;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; };
}
const pick = (r, a) => a[Math.floor(r() * a.length)];

function jsonData(size) { // ASCII JSON records, like a large API response
  const r = prng(1);
  const names = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india'];
  const recs = [];
  let len = 2;
  for (let i = 0; len < size; i++) {
    const rec = JSON.stringify({ id: i, guid: crypto.createHash('md5').update(String(i)).digest('hex'),
      isActive: r() < 0.5, balance: `$${(r() * 4000).toFixed(2)}`, age: 20 + Math.floor(r() * 50),
      name: `${pick(r, names)} ${pick(r, names)}`, tags: [pick(r, names), pick(r, names)],
      latitude: (r() * 180 - 90).toFixed(6), longitude: (r() * 360 - 180).toFixed(6) });
    recs.push(rec);
    len += rec.length + 1;
  }
  return Buffer.from(`[${recs.join(',')}]`).subarray(0, size);
}

function htmlData(size) { // ASCII HTML markup
  const r = prng(2);
  const words = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'consectetur', 'adipiscing', 'elit', 'sed', 'do'];
  let s = '<!DOCTYPE html>\n<html><head><title>Test</title></head><body>\n';
  for (let i = 0; s.length < size; i++) {
    const text = Array.from({ length: 8 + Math.floor(r() * 30) }, () => pick(r, words)).join(' ');
    s += `<div class="row r${i % 7}"><a href="/item/${i}">${pick(r, words)}</a><p>${text}</p></div>\n`;
  }
  return Buffer.from(s).subarray(0, size);
}

function germanText(size) { // Latin-1/UTF-8 prose with umlauts (sent as binary, as upstream)
  const r = prng(3);
  const words = ['Faust', 'und', 'der', 'die', 'das', 'Mephistopheles', 'Gretchen', 'Welt', 'Geist', 'über',
    'Nacht', 'Studierzimmer', 'höchst', 'Mädchen', 'schön', 'Wagner', 'ich', 'habe', 'nun', 'ach'];
  let s = '';
  while (Buffer.byteLength(s) < size) {
    s += Array.from({ length: 5 + Math.floor(r() * 9) }, () => pick(r, words)).join(' ') + (r() < 0.3 ? '.\n' : ', ');
  }
  return Buffer.from(s).subarray(0, size);
}

function bitmap() { // 512x512 8-bit grayscale BMP: smooth shapes with some noise
  const r = prng(4);
  const w = 512, h = 512, hdr = 54 + 1024;
  const b = Buffer.alloc(hdr + w * h);
  b.write('BM', 0); b.writeUInt32LE(b.length, 2); b.writeUInt32LE(hdr, 10); b.writeUInt32LE(40, 14);
  b.writeInt32LE(w, 18); b.writeInt32LE(h, 22); b.writeUInt16LE(1, 26); b.writeUInt16LE(8, 28);
  b.writeUInt32LE(w * h, 34); b.writeUInt32LE(256, 46);
  for (let i = 0; i < 256; i++) b.writeUInt32LE(i * 0x010101, 54 + i * 4);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const v = 128 + 60 * Math.sin(x / 37) * Math.cos(y / 23) + 40 * Math.sin((x + y) / 71) + (r() - 0.5) * 24;
      b[hdr + y * w + x] = Math.max(0, Math.min(255, Math.round(v)));
    }
  return b;
}

function pdfLike(size) { // text objects around already-compressed streams, as in a PDF
  const r = prng(5);
  const parts = [Buffer.from('%PDF-1.4\n')];
  let len = parts[0].length;
  for (let i = 1; len < size; i++) {
    const raw = Buffer.from(Array.from({ length: 3000 }, () => pick(r, ['BT', 'ET', 'Tf', 'Td', 'Tj', '12', '0', '1'])).join(' '));
    const noise = Buffer.from(Array.from({ length: 1500 }, () => Math.floor(r() * 256)));
    const stream = zlib.deflateSync(Buffer.concat([raw, noise]));
    const obj = Buffer.concat([Buffer.from(`${i} 0 obj\n<< /Length ${stream.length} /Filter /FlateDecode >>\nstream\n`), stream,
      Buffer.from('\nendstream\nendobj\n')]);
    parts.push(obj);
    len += obj.length;
  }
  return Buffer.concat(parts).subarray(0, size);
}

// Upstream's data sets, in the order of its reports (12.1 ... 12.5), with their kind and size.
const DATA_SETS = [
  { key: 'json_data1', desc: 'Large JSON data file', binary: false, make: () => jsonData(194056) },
  { key: 'lena512', desc: 'Lena Picture, Bitmap 512x512 bw', binary: true, make: bitmap },
  { key: 'gutenberg_faust', desc: "Human readable text, Goethe's Faust I (German)", binary: true, make: () => germanText(222218) },
  { key: 'html_data1', desc: 'Large HTML file', binary: false, make: () => htmlData(196608) },
  { key: 'ooms', desc: 'A larger PDF', binary: true, make: () => pdfLike(1029616) },
];
const dataCache = new Map();
function dataSet(ds) {
  if (!dataCache.has(ds.key)) dataCache.set(ds.key, ds.make());
  return dataCache.get(ds.key);
}

// ---- offers ----------------------------------------------------------------------------------
// Autobahn's PerMessageDeflateOffer(acceptNoContextTakeover = True, acceptMaxWindowBits = True,
// requestNoContextTakeover, requestMaxWindowBits) as a header value and as ws options.
function offerString(reqNoCtx, reqBits) {
  return 'permessage-deflate; client_no_context_takeover; client_max_window_bits' +
    (reqNoCtx ? '; server_no_context_takeover' : '') + (reqBits ? `; server_max_window_bits=${reqBits}` : '');
}
function wsOptions(reqNoCtx, reqBits) {
  return { clientNoContextTakeover: true, clientMaxWindowBits: true, serverNoContextTakeover: reqNoCtx,
    ...(reqBits ? { serverMaxWindowBits: reqBits } : {}), threshold: 0 };
}
const DEFLATE_PARAMS = [
  [[false, 0]], [[true, 0]], [[false, 8]], [[false, 15]], [[true, 8]], [[true, 15]],
  [[true, 8], [true, 0], [false, 0]],
];

// ---- the case table --------------------------------------------------------------------------
const deflateCases = [];
DATA_SETS.forEach((ds, j) => {
  MSG_SIZES.forEach(([len, waitSecs, frag], i) => deflateCases.push({
    id: `12.${j + 1}.${i + 1}`, group: `${ds.desc} (${ds.binary ? 'binary' : 'utf8'})`, data: ds, len, waitSecs, frag,
    offers: [[false, 0]],
    description: `Send ${COUNT} compressed messages each of payload size ${len}, auto-fragment to ${frag} octets. Use default permessage-deflate offer.`,
    expectation: `Receive echo'ed messages (with payload as sent). Timeout case after ${waitSecs} secs.`,
  }));
});
DEFLATE_PARAMS.forEach((offers, j) => {
  const co = JSON.stringify(offers.map(([a, b]) => [a, b]));
  MSG_SIZES.forEach(([len, waitSecs, frag], i) => deflateCases.push({
    id: `13.${j + 1}.${i + 1}`, group: `Large JSON data file - client offers ${co}`, data: DATA_SETS[0], len, waitSecs, frag, offers,
    description: `Send ${COUNT} compressed messages each of payload size ${len}, auto-fragment to ${frag} octets. Use permessage-deflate client offers (requestNoContextTakeover, requestMaxWindowBits): ${co}`,
    expectation: `Receive echo'ed messages (with payload as sent). Timeout case after ${waitSecs} secs.`,
  }));
});

// ---- running one case ------------------------------------------------------------------------
function sha1(b) { return crypto.createHash('sha1').update(b).digest('hex'); }

function runDeflateCase(def, url, { count = COUNT,
  maxWait = Number(process.env.AUTOBAHN_MAX_WAIT || 20) } = {}) {
  const started = Date.now();
  const data = dataSet(def.data);
  const r = {
    id: def.id, description: def.description, expectation: def.expectation,
    verdict: 'FAILED', behavior: 'FAILED', behaviorClose: 'FAILED', resultClose: '', why: '',
    expected: { messages: count, len: def.len, binary: def.data.binary }, expectedClose: { closedByMe: true, closeCode: [1000], requireClean: true },
    received: '', closedByMe: false, failedByMe: false, droppedByMe: false, wasClean: false,
    remoteCloseCode: null, localCloseCode: null, wirelog: [], extension: null,
    bytes: { payload: 0, wireOut: 0, wireIn: 0 }, duration: 0,
  };
  const [reqNoCtx, reqBits] = def.offers[0];
  const header = def.offers.map(([a, b]) => offerString(a, b)).join(', ');
  return new Promise((resolve) => {
    let ptr = 0, sent = 0, expectedHash = null, done = false;
    const ws = new WebSocket(url, {
      perMessageDeflate: wsOptions(reqNoCtx, reqBits), handshakeTimeout: 5000,
      finishRequest: (req) => { req.setHeader('Sec-WebSocket-Extensions', header); req.end(); },
    });
    const finish = (why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (why) r.why = r.why || why;
      r.duration = Date.now() - started;
      if (r.behavior === 'OK' && r.behaviorClose !== 'OK') r.verdict = 'FAILED';
      else r.verdict = r.behavior;
      resolve(r);
    };
    const timer = setTimeout(() => {
      r.why = `case did not finish within ${Math.min(def.waitSecs, maxWait)} s`;
      r.droppedByMe = true;
      ws.terminate();
      finish();
    }, Math.min(def.waitSecs, maxWait) * 1000);
    const sendOne = () => {
      const to = (ptr + def.len) % data.length;
      const msg = to > ptr ? data.subarray(ptr, to) : Buffer.concat([data.subarray(ptr), data.subarray(0, to)]);
      ptr = to;
      expectedHash = sha1(msg);
      sent++;
      r.bytes.payload += msg.length;
      const opts = { binary: def.data.binary, compress: true };
      if (!def.frag) { ws.send(msg, opts); return; }
      for (let off = 0; off < msg.length; off += def.frag)
        ws.send(msg.subarray(off, off + def.frag), { ...opts, fin: off + def.frag >= msg.length });
    };
    ws.on('upgrade', (res) => {
      r.extension = res.headers['sec-websocket-extensions'] || null;
      r.wirelog.push(`101 Sec-WebSocket-Extensions: ${r.extension}`);
    });
    ws.on('open', () => {
      if (!/permessage-deflate/.test(ws.extensions)) {
        r.behavior = 'UNIMPLEMENTED';
        r.why = 'permessage-deflate was not negotiated';
        r.closedByMe = true;
        ws.close(1000);
        return;
      }
      r.why = 'no echo yet';
      sendOne();
    });
    ws.on('message', (msg, isBinary) => {
      const got = sha1(msg);
      r.received = `${sent} sent, last echo ${msg.length} bytes binary=${isBinary}`;
      if (isBinary !== def.data.binary || msg.length !== def.len || got !== expectedHash) {
        r.behavior = 'FAILED';
        r.why = isBinary !== def.data.binary ? `echo type differs (binary ${isBinary})`
          : msg.length !== def.len ? `echo length ${msg.length}, expected ${def.len}` : `echo content differs (SHA-1 ${got})`;
        r.closedByMe = true;
        ws.close(1000);
      } else if (sent < count) {
        sendOne();
      } else {
        r.behavior = 'OK';
        r.why = `received all ${count} echoed messages`;
        r.closedByMe = true;
        ws.close(1000);
      }
    });
    ws.on('error', (err) => { r.wirelog.push(`error: ${err.message}`); r.why = r.why || err.message; });
    ws.on('close', (code) => {
      r.remoteCloseCode = code;
      r.wasClean = code === 1000;
      r.bytes.wireOut = ws._socket ? ws._socket.bytesWritten : 0;
      r.bytes.wireIn = ws._socket ? ws._socket.bytesRead : 0;
      r.behaviorClose = r.closedByMe && code === 1000 ? 'OK' : 'FAILED';
      r.resultClose = `closedByMe=${r.closedByMe} code=${code}`;
      if (!r.closedByMe && r.behavior !== 'FAILED') r.behavior = 'FAILED';
      if (!r.closedByMe) r.why = `the server closed the connection (${code}): ${r.why}`;
      finish();
    });
  });
}

module.exports = { deflateCases, runDeflateCase, DATA_SETS, offerString };
