'use strict';
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

const now = () => Math.floor(Date.now() / 1000);

module.exports = { sleep, within, waitFor, now };
