'use strict';
const fs = require('node:fs');
// Small helpers the end-to-end test files share: every wait is bounded.

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Rejects when the promise has not settled within ms.
function within(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// For the few things that give no event (counters, log lines): bounded polling.
async function waitFor(fn, ms, what, every = 20) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

// Waits until `re` matches the log of a lib/server.js instance (fs.watch on the file; bounded).
function waitLog(inst, re, ms, what) {
  return new Promise((resolve, reject) => {
    let watcher = null;
    let timer = null;
    let done = false;
    const finish = (err, m) => {
      if (done) return;
      done = true;
      if (watcher) watcher.close();
      clearTimeout(timer);
      if (err) reject(err); else resolve(m);
    };
    const check = () => {
      const m = re.exec(inst.log());
      if (m) finish(null, m);
    };
    watcher = fs.watch(inst.logFile, check);
    timer = setTimeout(() => finish(new Error(`timed out after ${ms} ms waiting for ${what} in the log:\n${inst.log().slice(-1500)}`)), ms);
    check();
  });
}

const now = () => Math.floor(Date.now() / 1000);

module.exports = { sleep, within, waitFor, waitLog, now };
