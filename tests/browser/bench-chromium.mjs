// Chromium numbers for Confab: connection set-up (2 pages, and an 8-page mesh) through the
// real page and the real signaling server, and data-channel throughput between two pages.
// Run through bench.sh (it provides the namespace, the server and the environment).
// Progress goes to stderr; stdout gets one JSON object at the end.

import { readFileSync, writeFileSync } from 'node:fs';

import { WebPeer, env, launchBrowser, sleep } from './lib.mjs';

// lib.mjs reports progress (and page warnings) with console.log: keep stdout for the result.
console.log = (...args) => console.error(...args);

const SETUP_RUNS = Number(process.env.BENCH_SETUP_RUNS || 20);
const SETUP_WARMUP = 2;
const MESH_PAGES = 8;
const MESH_RUNS = Number(process.env.BENCH_MESH_RUNS || 3);
const THROUGHPUT_MESSAGE = 16 * 1024;
const THROUGHPUT_WARMUP_MS = 1000;
const THROUGHPUT_WINDOW_MS = 5000;
const BUFFER_LOW = 1 << 20; // refill below 1 MiB...
const BUFFER_HIGH = 4 << 20; // ...up to 4 MiB

const started = Date.now();
const progress = (message) => console.error(`[bench ${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);

const median = (values) => {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
/** Nearest-rank percentile. */
const percentile = (values, p) => {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)];
};
const round = (x, digits = 1) => Number(x.toFixed(digits));

/** UDP datagrams the kernel dropped for want of receive buffer, in this network namespace. */
function udpRcvbufErrors() {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const [names, values] = lines.map((l) => l.trim().split(/\s+/));
    return Number(values[names.indexOf('RcvbufErrors')]);
  } catch {
    return null;
  }
}

let roomCount = 0;
const newRoom = (kind) => `bench-${kind}-${process.pid}-${++roomCount}`;

/**
 * Installed once per page, through the tap's channel hook: each `chat` channel keeps the
 * time of its latest `open` (`lastOpenAt`) and counts its `open` events (`opens`).
 *
 * Why not the tap's `opens` (one time per channel that opened, whatever its connection):
 * under loss, Chromium can announce a channel the other side created (`datachannel`, with
 * readyState `open`, then `open`) while, underneath, this side's end of it is still
 * connecting. What is sent then is dropped without an error; readyState falls back to
 * `connecting` without an event ~10-250 ms later, and a second `open` comes when the
 * channel really opens, a retransmission (~0.5-1 s) later. The tap counts such a channel at
 * its first `open`, so its count can reach 7 while a connection is not usable yet.
 */
function installOpenClock(peer) {
  return peer.page.evaluate(() => {
    const now = () => performance.timeOrigin + performance.now();
    window.__tap.onChannel = (channel) => {
      if (channel.label !== 'chat') return;
      channel.opens = 0;
      // A received channel comes open; its `open` event follows and updates this.
      channel.lastOpenAt = channel.readyState === 'open' ? now() : null;
      channel.addEventListener('open', () => {
        channel.opens += 1;
        channel.lastOpenAt = now();
      });
    };
  });
}

/**
 * The page's connections in its current room, each with its `chat` channels (PROTOCOL.md
 * section 2: exactly one), the page's view, the channel's readyState and its native state
 * (from getStats: what the channel really is), and `ok` when there are `n` of them and every
 * one is usable: open in the page, in readyState and natively.
 */
const usable = (peer, n) =>
  peer.page.evaluate(async (n) => {
    const connections = await Promise.all(
      window.confab.state().peers.map(async (p) => {
        const pc = window.confab.peerConnection(p.id);
        const chats = pc.tapChannels.filter((c) => c.label === 'chat');
        const native = [];
        (await pc.getStats()).forEach((r) => {
          if (r.type === 'data-channel' && r.label === 'chat') native.push(r.state);
        });
        const [chat] = chats;
        return {
          name: p.name,
          ok: p.channelOpen && chats.length === 1 && chat.readyState === 'open' && native.length === 1 && native[0] === 'open',
          state: `${p.state}/${p.iceState}, chat ${chats.map((c) => c.readyState).join('+') || 'none'}, natively ${native.join('+') || 'none'}`,
          chats: chats.length,
          opens: chat?.opens ?? 0,
          lastOpenAt: chat?.lastOpenAt ?? null,
        };
      }),
    );
    return { joinSentAt: window.__tap.joinSentAt, ok: connections.length === n && connections.every((c) => c.ok), connections };
  }, n);

const describe = (t) => t.connections.map((c) => `${c.name}: ${c.state}${c.chats === 1 ? '' : ` (${c.chats} chat channels)`}`).join('; ');

/**
 * Waits until each page has `n` usable chat channels (see `usable`), all at the same
 * check, and returns what `usable` saw then. The page's own state is polled cheaply first;
 * the native state then confirms it.
 */
async function allUsable(peers, n, what, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const waits = await Promise.allSettled(
      peers.map(async (peer) => {
        for (;;) {
          const pageSaysSo = await peer.page
            .waitForFunction(
              (n) => {
                const s = window.confab.state();
                return s.peers.length === n && s.peers.every((p) => p.channelOpen);
              },
              n,
              { polling: 5, timeout: Math.max(deadline - Date.now(), 1) },
            )
            .then(
              () => true,
              () => false,
            );
          const t = await usable(peer, n);
          if (pageSaysSo && t.ok) return;
          if (Date.now() > deadline) throw new Error(`${peer.label}: timed out after ${timeout} ms waiting for ${what}: ${describe(t)}`);
          await sleep(10);
        }
      }),
    );
    const failed = waits.findIndex((w) => w.status === 'rejected');
    if (failed >= 0) {
      await savePageLog(peers[failed]);
      throw waits[failed].reason;
    }
    // A channel can fall back after its page passed: check all of them again, together.
    const taps = await Promise.all(peers.map((p) => usable(p, n)));
    if (taps.every((t) => t.ok)) return taps;
  }
}

/** The page's own log (state changes, signals) beside the bench's other logs. */
async function savePageLog(peer) {
  const pageLog = await peer.page.evaluate(() =>
    [...document.querySelectorAll('#log .entry')].map((e) => e.firstChild.textContent + ' ' + e.childNodes[2]?.textContent).join('\n'),
  );
  writeFileSync(new URL(`./out/bench/${peer.label}.log`, import.meta.url), pageLog);
}

/** Chat channels of these checks that Chromium showed open early (they opened twice). */
const openedEarly = (taps) => taps.reduce((k, t) => k + t.connections.filter((c) => c.opens > 1).length, 0);

/**
 * Joins through the page's own `window.confab.join` (what the form calls), after clearing
 * the tap's join time. Does not wait.
 */
function startJoin(peer, room, name) {
  return peer.page.evaluate(
    ({ server, room, name }) => {
      window.__tap.joinSentAt = null;
      window.confab.join({ server, room, name, password: '', ice: '' });
    },
    { server: env.wsUrl, room, name },
  );
}

const waitInPage = (peer, fn, arg, what, timeout = 15_000) =>
  peer.page.waitForFunction(fn, arg, { polling: 5, timeout }).catch((err) => {
    throw new Error(`${peer.label}: timed out waiting for ${what}: ${err.message.split('\n')[0]}`);
  });

const welcomed = (peer) => waitInPage(peer, () => Boolean(window.confab.state().id), null, 'the welcome');

async function leave(peers) {
  await Promise.all(peers.map((p) => p.page.evaluate(() => window.confab.leave())));
}

/** Join sent (the newcomer's `join` frame) to the chat channel open on both pages. */
async function setupOnce(a, b) {
  const room = newRoom('setup');
  await startJoin(a, room, 'A');
  await welcomed(a);
  await startJoin(b, room, 'B');
  const [ta, tb] = await allUsable([a, b], 1, 'the chat channel to open');
  const ms = Math.max(ta.connections[0].lastOpenAt, tb.connections[0].lastOpenAt) - tb.joinSentAt;
  if (!(ms > 0)) throw new Error(`bad set-up timing: ${JSON.stringify({ ta, tb })}`);
  return { ms, early: openedEarly([ta, tb]) };
}

/**
 * Every page joins at once; from the first join sent to the last page having all 7 chat
 * channels of its current connections usable (see `usable`), each at its latest `open`.
 */
async function meshOnce(pages) {
  const room = newRoom('mesh');
  await Promise.all(pages.map((p, i) => startJoin(p, room, `M${i}`)));
  const want = pages.length - 1;
  const taps = await allUsable(pages, want, `${want} chat channels to open`, 30_000);
  const t0 = Math.min(...taps.map((t) => t.joinSentAt));
  const t1 = Math.max(...taps.flatMap((t) => t.connections.map((c) => c.lastOpenAt)));
  return { ms: t1 - t0, early: openedEarly(taps) };
}

/**
 * Two joined pages: an extra ordered, reliable channel `bench` on their connection (the
 * page ignores channels it does not know), 16 KiB binary messages sent with bufferedAmount
 * back-pressure, bytes counted at the receiver for 5 s after a 1 s warm-up.
 */
async function throughput(sender, receiver) {
  await receiver.page.evaluate(
    ({ warmup, window: span }) => {
      const rx = { ready: false, done: false, bytes: 0, total: 0, messages: 0, longestGapMs: 0 };
      window.__rx = rx;
      const openClock = window.__tap.onChannel;
      window.__tap.onChannel = (channel, pc) => {
        openClock?.(channel, pc);
        if (channel.label !== 'bench') return;
        channel.binaryType = 'arraybuffer';
        rx.ready = true;
        let first = 0;
        let last = 0;
        channel.onmessage = ({ data }) => {
          const now = performance.now();
          const size = data.byteLength ?? data.length;
          rx.total += size;
          rx.messages += 1;
          if (!first) first = now;
          if (rx.done) return;
          if (now >= first + warmup + span) {
            rx.done = true;
            rx.seconds = span / 1000;
          } else if (now >= first + warmup) {
            rx.bytes += size;
            // The longest wait between two messages inside the window: a loss recovered
            // by a retransmission timeout shows here.
            if (last) rx.longestGapMs = Math.max(rx.longestGapMs, now - last);
            last = now;
          }
        };
      };
    },
    { warmup: THROUGHPUT_WARMUP_MS, window: THROUGHPUT_WINDOW_MS },
  );
  await sender.page.evaluate(
    ({ to, size, low, high }) =>
      new Promise((resolve, reject) => {
        const pc = window.confab.peerConnection(to);
        const channel = pc.createDataChannel('bench', { ordered: true });
        channel.binaryType = 'arraybuffer';
        const chunk = new Uint8Array(size);
        crypto.getRandomValues(chunk.subarray(0, 65536 > size ? size : 65536));
        const tx = { stop: false, sent: 0, maxBuffered: 0, errors: 0 };
        window.__tx = tx;
        channel.bufferedAmountLowThreshold = low;
        const pump = () => {
          while (!tx.stop && channel.readyState === 'open' && channel.bufferedAmount < high) {
            channel.send(chunk);
            tx.sent += size;
          }
          tx.maxBuffered = Math.max(tx.maxBuffered, channel.bufferedAmount);
        };
        channel.onbufferedamountlow = pump;
        channel.onerror = () => (tx.errors += 1);
        tx.start = pump;
        tx.finish = () => {
          tx.stop = true;
          channel.close();
        };
        channel.onopen = () => resolve();
        setTimeout(() => reject(new Error('the bench channel did not open')), 10_000);
      }),
    { to: receiver.id, size: THROUGHPUT_MESSAGE, low: BUFFER_LOW, high: BUFFER_HIGH },
  );
  await waitInPage(receiver, () => window.__rx.ready, null, 'the bench channel');
  await sender.page.evaluate(() => window.__tx.start());
  await waitInPage(receiver, () => window.__rx.done, null, 'the throughput window', 30_000);
  const tx = await sender.page.evaluate(() => {
    window.__tx.finish();
    return { sent: window.__tx.sent, maxBuffered: window.__tx.maxBuffered, errors: window.__tx.errors };
  });
  const rx = await receiver.page.evaluate(() => ({ ...window.__rx }));
  if (tx.errors) throw new Error(`the bench channel had ${tx.errors} errors`);
  return { mbps: rx.bytes / rx.seconds / 1e6, rx, tx };
}

async function main() {
  const browser = await launchBrowser();
  const version = browser.version();
  progress(`Chromium ${version}, page ${env.pageUrl}`);
  const pages = [];
  try {
    for (let i = 0; i < MESH_PAGES; i += 1) pages.push(await WebPeer.open(browser, `bench${i}`, { tap: true, quiet: true }));
    await Promise.all(pages.map(installOpenClock));
    const [a, b] = pages;

    // --- set-up, two pages ----------------------------------------------------------
    const setup = [];
    let setupEarly = 0;
    for (let i = 0; i < SETUP_WARMUP + SETUP_RUNS; i += 1) {
      const { ms, early } = await setupOnce(a, b);
      if (i >= SETUP_WARMUP) setup.push(ms);
      setupEarly += early;
      await leave([a, b]);
      await sleep(30);
    }
    progress(`setup2: ${setup.map((x) => x.toFixed(0)).join(' ')} ms (${setupEarly} chat channels shown open early)`);

    // --- 8-page mesh ----------------------------------------------------------------
    const mesh = [];
    for (let i = 0; i < MESH_RUNS; i += 1) {
      const { ms, early } = await meshOnce(pages);
      mesh.push(ms);
      progress(`mesh8 run ${i + 1}: ${ms.toFixed(0)} ms (${early} chat channels shown open early)`);
      await leave(pages);
      await sleep(300);
    }

    // --- throughput -----------------------------------------------------------------
    // Only the two pages measured stay open.
    await Promise.all(pages.splice(2).map((p) => p.close()));
    const room = newRoom('throughput');
    await startJoin(a, room, 'Sender');
    await welcomed(a);
    await startJoin(b, room, 'Receiver');
    await allUsable([a, b], 1, 'the chat channel');
    a.id = (await a.state()).id;
    b.id = (await b.state()).id;
    const dropsBefore = udpRcvbufErrors();
    const t = await throughput(a, b);
    const drops = dropsBefore === null ? null : udpRcvbufErrors() - dropsBefore;
    progress(
      `throughput: ${t.mbps.toFixed(1)} MB/s, longest gap ${t.rx.longestGapMs.toFixed(0)} ms ` +
        `(${t.rx.bytes} bytes in ${t.rx.seconds} s after the warm-up; ` +
        `${t.rx.messages} messages received in all; largest bufferedAmount ${t.tx.maxBuffered}; ` +
        `${drops} UDP datagrams dropped by the kernel for want of receive buffer)`,
    );
    await leave([a, b]);

    const result = {
      chromium_version: version,
      setup_method:
        'two pages of the served page over the real signaling server: from the newcomer page sending its join frame ' +
        '(window.confab.join, what the form calls) to the chat channel open on both pages (its latest open event, confirmed by ' +
        'its native state); a fresh room each run, ' +
        `${SETUP_WARMUP} warm-up runs not counted`,
      setup2_ms: round(median(setup)),
      setup2_p90_ms: round(percentile(setup, 90)),
      setup2_runs: setup.map((x) => round(x)),
      mesh8_ms: round(median(mesh)),
      mesh8_runs: mesh.map((x) => round(x)),
      mesh8_method:
        `${MESH_PAGES} pages join one room at once: from the first join frame sent to the last page having all ${MESH_PAGES - 1} chat channels open, ` +
        'per connection of the current room, each at its latest open event and confirmed by its native state (getStats)',
      throughput_mbps: round(t.mbps, 2),
      throughput_longest_gap_ms: round(t.rx.longestGapMs),
      udp_loss_pct: Number(process.env.BENCH_LOSS_PCT || 0),
      throughput_udp_rcvbuf_drops: drops,
      throughput_method:
        'two pages (separate renderer processes) connected through the served page; an extra ordered reliable channel on that ' +
        `connection, ${THROUGHPUT_MESSAGE}-byte binary messages, bufferedAmount kept between ${BUFFER_LOW} and ${BUFFER_HIGH} bytes ` +
        `(bufferedAmountLowThreshold + onbufferedamountlow), bytes counted at the receiver for ${THROUGHPUT_WINDOW_MS / 1000} s ` +
        `after a ${THROUGHPUT_WARMUP_MS / 1000} s warm-up; 1 MB = 1e6 bytes`,
      duration_s: round((Date.now() - started) / 1000),
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await Promise.all(pages.map((p) => p.close().catch(() => {})));
    await browser.close();
  }
}

main().catch((err) => {
  console.error(`bench failed: ${err.stack || err}`);
  process.exit(1);
});
