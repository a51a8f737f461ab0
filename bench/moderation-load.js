#!/usr/bin/env node
'use strict';
// Moderation throughput load client (bench/moderation.sh runs it): C WebSocket connections to
// /text/moderation, each keeping N requests in flight over a fixed corpus of short realistic
// texts (tests/moderation/labelled.jsonl), for a warm-up and then a measured window. Counts
// answers/s (answers that arrive inside the window), latency (send -> answer, per request,
// correlated by self_reference) p50/p90/p99/max, errors (error answers, unexpected closes,
// answers that cannot be correlated), and the CPU of the server (/proc/PID/stat), of this
// process and of the whole machine (/proc/stat) over the window.
//
//   node bench/moderation-load.js --url ws://127.0.0.1:PORT/text/moderation --key KEY \
//        [--conns 100] [--inflight 8] [--duration 10] [--warmup 2] [--server-pid PID] \
//        [--corpus tests/moderation/labelled.jsonl] [--label NAME]
//
// Output: one human summary line, then one JSON line (stdout). Exit 0 when the run completed
// with no error, 1 otherwise.
// Uses `ws` from tests/e2e/node_modules (no dependency of its own).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const WebSocket = require(path.join(ROOT, 'tests', 'e2e', 'node_modules', 'ws'));

function args() {
  const o = { conns: 100, inflight: 8, duration: 10, warmup: 2, corpus: path.join(ROOT, 'tests', 'moderation', 'labelled.jsonl'), label: 'moderation' };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i += 2) {
    const k = a[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(k in o) && !['url', 'key', 'serverPid'].includes(k)) { process.stderr.write(`unknown option ${a[i]}\n`); process.exit(2); }
    o[k] = a[i + 1];
  }
  for (const k of ['conns', 'inflight', 'duration', 'warmup', 'serverPid']) if (o[k] !== undefined) o[k] = Number(o[k]);
  if (!o.url || !o.key) { process.stderr.write('usage: moderation-load.js --url URL --key KEY [...]\n'); process.exit(2); }
  return o;
}
const opt = args();

// The corpus: every text of the labelled set (clean and abusive, plain and obfuscated).
const corpus = fs.readFileSync(opt.corpus, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l).text);
const payloads = corpus.map((t) => JSON.stringify(t)); // JSON string literals, spliced into requests

// ------------------------------------------------------------------ CPU accounting

const TCK = 100; // USER_HZ on Linux
function procTicks(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime of every thread
  } catch { return null; }
}
function machineTicks() {
  const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = cpu[3] + (cpu[4] || 0);
  const total = cpu.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}
// How many CPUs a process may run on (Cpus_allowed_list, e.g. "0-1" or "0,2").
function allowedCpus(pid) {
  try {
    const m = /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m[1].split(',').reduce((n, r) => { const [a, b] = r.split('-').map(Number); return n + (b === undefined ? 1 : b - a + 1); }, 0);
  } catch { return os.cpus().length; }
}
function snap() {
  return { t: process.hrtime.bigint(), server: opt.serverPid ? procTicks(opt.serverPid) : null, self: process.cpuUsage(), machine: machineTicks() };
}

// ------------------------------------------------------------------ the load

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
let phase = 'connect'; // connect -> warmup -> measure -> drain
let measured = 0;
let total = 0;
const actions = { pass: 0, flag: 0, delete: 0 };
let errorAnswers = 0;
let uncorrelated = 0;
let unexpectedCloses = 0;
let lat = new Float64Array(1 << 20);
let nlat = 0;
let corpusPos = 0;
let firstError = null;

function recordLatency(ms) {
  if (nlat === lat.length) { const n = new Float64Array(lat.length * 2); n.set(lat); lat = n; }
  lat[nlat++] = ms;
}

class Conn {
  constructor(idx) {
    this.idx = idx;
    this.seq = 0;
    this.pending = new Map(); // reference -> send time (ms)
    this.ws = new WebSocket(opt.url, { headers: { 'x-chatsight-api-auth': opt.key }, perMessageDeflate: false });
    this.ws.on('message', (data) => this.onMessage(data.toString('utf8')));
    this.ws.on('error', (e) => { if (!firstError) firstError = `conn ${idx}: ${e.message}`; });
    this.ws.on('close', (code) => {
      if (phase !== 'done') { unexpectedCloses++; if (!firstError) firstError = `conn ${idx} closed ${code}`; }
    });
    this.opened = new Promise((resolve, reject) => { this.ws.once('open', resolve); this.ws.once('error', reject); });
  }

  send() {
    const ref = `${this.idx}-${this.seq++}`;
    const text = payloads[corpusPos++ % payloads.length];
    this.pending.set(ref, now());
    this.ws.send(`{"sample":${text},"reference":"${ref}"}`);
  }

  onMessage(text) {
    const t = now();
    // The reference is the request's own string: no JSON.parse needed to find it (the answer is
    // compact JSON with "self_reference":"<ref>" in response.metadata).
    const i = text.indexOf('"self_reference":"');
    const ref = i < 0 ? null : text.slice(i + 18, text.indexOf('"', i + 18));
    const t0 = ref === null ? undefined : this.pending.get(ref);
    if (t0 === undefined) {
      uncorrelated++;
      if (!firstError) firstError = `uncorrelated answer: ${text.slice(0, 200)}`;
    } else {
      this.pending.delete(ref);
    }
    total++;
    const ok = text.startsWith('{"api":"chatsight-lang-text","success":true');
    if (phase === 'measure') {
      measured++;
      if (t0 !== undefined) recordLatency(t - t0);
      if (ok) {
        const a = /"suggestedAction":\["(pass|flag|delete)"/.exec(text);
        if (a) actions[a[1]]++;
      }
    }
    if (!ok) { errorAnswers++; if (!firstError) firstError = `error answer: ${text.slice(0, 200)}`; }
    if (phase === 'warmup' || phase === 'measure') this.send();
  }
}

function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const r2 = (x) => (x === null ? null : Math.round(x * 100) / 100);

async function main() {
  const conns = Array.from({ length: opt.conns }, (_, i) => new Conn(i));
  const openDeadline = setTimeout(() => { process.stderr.write('connections not open within 10 s\n'); process.exit(1); }, 10000);
  await Promise.all(conns.map((c) => c.opened));
  clearTimeout(openDeadline);
  phase = 'warmup';
  for (const c of conns) for (let k = 0; k < opt.inflight; k++) c.send();
  await new Promise((r) => setTimeout(r, opt.warmup * 1000));
  phase = 'measure';
  const s0 = snap();
  await new Promise((r) => setTimeout(r, opt.duration * 1000));
  const s1 = snap();
  phase = 'drain';
  // Let what is in flight come back (bounded), so that nothing is counted lost by mistake.
  const drainDeadline = Date.now() + 5000;
  while (conns.some((c) => c.pending.size) && Date.now() < drainDeadline) await new Promise((r) => setTimeout(r, 20));
  const lost = conns.reduce((s, c) => s + c.pending.size, 0);
  phase = 'done';
  for (const c of conns) c.ws.close(1000);

  const secs = Number(s1.t - s0.t) / 1e9;
  const sorted = lat.subarray(0, nlat).sort();
  const serverCpu = s0.server !== null && s1.server !== null ? ((s1.server - s0.server) / TCK / secs) * 100 : null;
  const selfCpu = ((s1.self.user - s0.self.user + s1.self.system - s0.self.system) / 1e6 / secs) * 100;
  const dm = s1.machine.total - s0.machine.total;
  const ncpu = os.cpus().length;
  const machineBusy = dm > 0 ? ((s1.machine.busy - s0.machine.busy) / dm) * 100 * ncpu : null; // % of one CPU
  const other = machineBusy === null || serverCpu === null ? null : Math.max(0, machineBusy - serverCpu - selfCpu);
  // The verdict. Node runs the client's JavaScript on one thread: ~one CPU is its ceiling. The
  // server's ceiling is the CPUs it may run on (its affinity) minus what the others take there.
  const serverCpus = opt.serverPid ? allowedCpus(opt.serverPid) : ncpu;
  const serverRoom = Math.min(serverCpus * 100, ncpu * 100 - selfCpu - (other || 0) * (serverCpus === ncpu ? 1 : 0));
  let bottleneck;
  if (selfCpu >= 90) bottleneck = 'load client (its one JavaScript thread is saturated)';
  else if (serverCpu !== null && serverCpu >= 0.9 * serverRoom) {
    bottleneck = `server (CPU-bound: ${Math.round(serverCpu)}% of the ~${Math.round(serverRoom)}% it can get on ${serverCpus} CPU(s); the client thread is at ${Math.round(selfCpu)}%, not saturated)`;
  } else bottleneck = 'neither CPU-bound (latency-bound: in-flight x connections / latency)';
  const errors = errorAnswers + uncorrelated + unexpectedCloses + lost;
  const out = {
    label: opt.label, conns: opt.conns, inflight: opt.inflight, duration_s: r2(secs), corpus_texts: corpus.length,
    answers: measured, answers_per_s: Math.round(measured / secs),
    latency_ms: { p50: r2(pct(sorted, 50)), p90: r2(pct(sorted, 90)), p99: r2(pct(sorted, 99)), max: r2(sorted.length ? sorted[sorted.length - 1] : null) },
    actions, errors, error_answers: errorAnswers, uncorrelated, unexpected_closes: unexpectedCloses, lost, total_answers: total,
    cpu_pct: { server: r2(serverCpu), client: r2(selfCpu), other: r2(other), machine_busy: r2(machineBusy), ncpu, server_cpus: serverCpus },
    bottleneck, first_error: firstError,
  };
  process.stdout.write(`${opt.label}: ${out.answers_per_s} answers/s (${measured} in ${r2(secs)} s, ${opt.conns} conns x ${opt.inflight} in flight), ` +
    `latency p50 ${out.latency_ms.p50} ms p99 ${out.latency_ms.p99} ms max ${out.latency_ms.max} ms, errors ${errors}, ` +
    `CPU server ${Math.round(serverCpu)}% client ${Math.round(selfCpu)}% other ${other === null ? '?' : Math.round(other)}% (of ${ncpu * 100}%), bottleneck: ${bottleneck}\n`);
  process.stdout.write(`${JSON.stringify(out)}\n`);
  setTimeout(() => process.exit(errors ? 1 : 0), 200).unref();
}

main().catch((e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });
