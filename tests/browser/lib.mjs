// Helpers for the real-browser tests. run.sh starts `confab server` inside a network
// namespace and runs the tests there, passing where things are through the environment.
//
// Every kind of participant is a "peer" with the same small surface, so one test can mix
// browser pages with other clients (e.g. a headless `confab peer` speaking JSON lines):
//   label                  a name for progress lines and screenshots
//   id                     its signaling peer id, once joined
//   join(room, name, opts) joins and resolves once the server welcomed it
//   state()                { id, peers: [{id, name, state, channelOpen}],
//                            messages: [{id, from, to, text, scope, mine, sentTo, ackedBy, copies}] }
//   sendChat(text, {to})   sends to the room (or one peer id) and resolves to the message id
//   close()                leaves and releases everything
// WebPeer is a page, NativePeer a `confab peer` process. The waits and checks below
// (waitForMesh, waitForChat, waitForAcks, chatOnce) only use state(), plus a page's DOM
// where the peer has one.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const here = new URL('.', import.meta.url).pathname;

/** Where things are; run.sh sets these inside its namespace. */
export const env = {
  pageUrl: required('CONFAB_URL'), // http://ADDR:PORT/, the page as the server serves it
  wsUrl: process.env.CONFAB_WS, // ws://ADDR:PORT/ws
  addr: process.env.CONFAB_ADDR, // the namespace's own address
  bin: process.env.CONFAB_BIN, // the confab binary, for clients other than the page
  chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  out: process.env.CONFAB_OUT || joinPath(here, 'out'),
};

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests through run.sh`);
  return value;
}

const started = Date.now();
/** A progress line with the time since start. */
export function step(message) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(2)}s] ${message}`);
}

/** Polls `probe` until it returns something truthy; throws with the last value seen. */
export async function waitUntil(probe, { what, timeout = 15_000, interval = 50 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let roomCount = 0;
/** A room name no other test of this run uses. */
export const uniqueRoom = (prefix = 'room') => `${prefix}-${process.pid}-${++roomCount}`;

/**
 * Headless Debian Chromium; never a downloaded browser. `executablePath` and `processEnv`
 * let a caller start it through a wrapper (the netlab runs it inside a lab namespace).
 */
export function launchBrowser({ executablePath = env.chromium, processEnv } = {}) {
  return chromium.launch({
    executablePath,
    ...(processEnv ? { env: processEnv } : {}),
    headless: true,
    args: [
      '--no-sandbox', // root, and a namespace without user namespaces
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // Offer real host candidates (10.x) instead of mDNS names nobody here resolves.
      '--disable-features=WebRtcHideLocalIpsWithMdns',
    ],
  });
}

/**
 * Installed before the page's own script when a WebPeer is opened with `{ tap: true }`:
 * every RTCPeerConnection keeps its data channels in `pc.tapChannels` (so a test can write
 * raw messages on the page's `chat` channel through `window.confab.peerConnection(id)`),
 * and `window.__tap` records when the `join` frame went out, when each `chat` channel
 * opened (`performance.timeOrigin + performance.now()`, comparable across pages) and the
 * text messages that came in on `chat` channels (`received`, the first 1000).
 */
function tapScript() {
  const now = () => performance.timeOrigin + performance.now();
  window.__tap = { joinSentAt: null, opens: [], received: [] };
  const Native = window.RTCPeerConnection;
  class TappedPeerConnection extends Native {
    constructor(...args) {
      super(...args);
      this.tapChannels = [];
      // Registered before the page sets `ondatachannel`, so it runs first.
      this.addEventListener('datachannel', (event) => this.tapChannel(event.channel));
    }
    createDataChannel(...args) {
      const channel = super.createDataChannel(...args);
      this.tapChannel(channel);
      return channel;
    }
    tapChannel(channel) {
      this.tapChannels.push(channel);
      // A hook for a benchmark that must see a channel before its first message.
      window.__tap.onChannel?.(channel, this);
      if (channel.label !== 'chat') return;
      // What arrives on chat channels, as text (the page sees the same).
      channel.addEventListener('message', ({ data }) => {
        if (typeof data === 'string' && window.__tap.received.length < 1000) window.__tap.received.push(data);
      });
      const opened = () => window.__tap.opens.push(now());
      if (channel.readyState === 'open') opened();
      else channel.addEventListener('open', opened, { once: true });
    }
  }
  window.RTCPeerConnection = TappedPeerConnection;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (window.__tap.joinSentAt === null && typeof data === 'string' && JSON.parse(data).type === 'join') {
      window.__tap.joinSentAt = now();
    }
    return send.call(this, data);
  };
}

/** One browser page with the Confab page open, in a context (profile) of its own. */
export class WebPeer {
  /**
   * `tap`: install tapScript (raw channel access, timings). `quiet`: do not echo the page's
   * console warnings and errors (page errors are still kept in `pageErrors`).
   */
  static async open(browser, label, { tap = false, quiet = false } = {}) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
    if (tap) await context.addInitScript(tapScript);
    const page = await context.newPage();
    const peer = new WebPeer(label, context, page, { quiet });
    // A load that a network change in the fresh namespace cut short is tried again, twice.
    for (let attempt = 1; ; attempt++) {
      await page.goto(env.pageUrl);
      try {
        await page.waitForFunction(() => Boolean(window.confab), null, { timeout: 5000 });
        return peer;
      } catch (err) {
        if (attempt === 3) throw err;
        step(`${label}: the page did not start (${err.message.split('\n')[0]}), loading it again`);
      }
    }
  }

  constructor(label, context, page, { quiet = false } = {}) {
    this.label = label;
    this.context = context;
    this.page = page;
    this.id = null;
    this.pageErrors = []; // uncaught exceptions: a test fails if any
    page.on('pageerror', (err) => {
      this.pageErrors.push(err.message);
      step(`${label}: page error: ${err.message}`);
    });
    page.on('console', (msg) => {
      if (!quiet && (msg.type() === 'error' || msg.type() === 'warning')) step(`${label}: console ${msg.type()}: ${msg.text()}`);
    });
  }

  /** Fills the join form the way a person would and waits for the welcome. */
  async join(room, name, { password = '' } = {}) {
    const { page } = this;
    await page.fill('#room', room);
    await page.fill('#name', name);
    await page.fill('#password', password);
    await page.click('#join');
    const state = await waitUntil(
      async () => {
        const s = await this.state();
        return (s.id || s.errors.length) && s;
      },
      { what: `${this.label} to be welcomed in ${room}` },
    );
    if (!state.id) throw new Error(`${this.label} was refused: ${JSON.stringify(state.errors)}`);
    this.id = state.id;
    step(`${this.label} joined ${room} as ${name} (${this.id})`);
    return state;
  }

  /** Tries to join and resolves to the error the server answered with (or null). */
  async joinExpectingError(room, name, { password = '' } = {}) {
    await this.page.fill('#room', room);
    await this.page.fill('#name', name);
    await this.page.fill('#password', password);
    await this.page.click('#join');
    const state = await waitUntil(
      async () => {
        const s = await this.state();
        return (s.id || s.errors.length) && s;
      },
      { what: `${this.label} to get an answer to its join` },
    );
    return state.errors[0] ?? null;
  }

  state() {
    return this.page.evaluate(() => window.confab.state());
  }

  /** Types into the composer and clicks Send; `to` is a peer id, or absent for the room. */
  async sendChat(text, { to } = {}) {
    const { page } = this;
    await page.selectOption('#target', to ?? '');
    await page.fill('#message', text);
    await page.click('#send');
    const sent = await waitUntil(
      async () => (await this.state()).messages.find((m) => m.mine && m.text === text),
      { what: `${this.label} to show its message "${text}"` },
    );
    return sent.id;
  }

  /**
   * Writes `data` (a string, or `{ binary: [bytes] }`) as is on the page's open `chat`
   * channel to peer `peerId`, bypassing the page's own encoding. Needs `{ tap: true }`.
   */
  sendRaw(peerId, data) {
    return this.page.evaluate(
      ({ id, data }) => {
        const pc = window.confab.peerConnection(id);
        if (!pc?.tapChannels) throw new Error(`no tapped peer connection to ${id}`);
        const channel = pc.tapChannels.find((c) => c.label === 'chat' && c.readyState === 'open');
        if (!channel) throw new Error(`no open chat channel to ${id}`);
        channel.send(typeof data === 'string' ? data : new Uint8Array(data.binary));
      },
      { id: peerId, data },
    );
  }

  /** The text messages received on chat channels so far, parsed. Needs `{ tap: true }`. */
  async received() {
    const raw = await this.page.evaluate(() => window.__tap.received);
    return raw.map((text) => {
      try {
        return JSON.parse(text);
      } catch {
        return { unparsed: text };
      }
    });
  }

  /** How many elements show a message id (the page must draw each id once). */
  countShown(id) {
    return this.page.locator(`.msg[data-id="${id}"]`).count();
  }

  async screenshot(name) {
    mkdirSync(joinPath(env.out, 'screenshots'), { recursive: true });
    const path = joinPath(env.out, 'screenshots', `${name}.png`);
    await this.page.screenshot({ path, fullPage: true });
    return path;
  }

  /** Saves the page's log panel to out/logs/LABEL.log: the first thing to read on a failure. */
  async saveLog() {
    mkdirSync(joinPath(env.out, 'logs'), { recursive: true });
    const path = joinPath(env.out, 'logs', `${this.label}.log`);
    const text = await this.page.evaluate(() =>
      [...document.querySelectorAll('#log .entry')]
        .map((e) => e.innerText.replace(/\s*show\s*$/, '') + (e.querySelector('pre') ? `\n${e.querySelector('pre').textContent}` : ''))
        .join('\n'),
    );
    writeFileSync(path, text);
    return path;
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    await this.saveLog().catch(() => {});
    await this.context.close();
  }
}

/** Waits until every peer sees every other one connected with an open chat channel. */
export async function waitForMesh(peers, { timeout = 20_000 } = {}) {
  const started = Date.now();
  await Promise.all(
    peers.map((peer) =>
      waitUntil(
        async () => {
          const { peers: seen } = await peer.state();
          return peers
            .filter((other) => other !== peer)
            .every((other) => seen.some((p) => p.id === other.id && p.state === 'connected' && p.channelOpen));
        },
        { what: `${peer.label} to be connected to ${peers.filter((o) => o !== peer).map((o) => o.label).join(', ')}`, timeout },
      ),
    ),
  );
  const ms = Date.now() - started;
  step(`mesh of ${peers.length} connected (${(peers.length * (peers.length - 1)) / 2} pairs), ${ms} ms after the wait began`);
  return ms;
}

/** Waits for message `id` at `peer` and returns it as the peer's state shows it. */
export function waitForChat(peer, id, { timeout = 10_000 } = {}) {
  return waitUntil(async () => (await peer.state()).messages.find((m) => m.id === id), {
    what: `${peer.label} to receive message ${id}`,
    timeout,
  });
}

/** Waits until the sender's copy of message `id` is acked by every peer in `by`. */
export function waitForAcks(sender, id, by, { timeout = 10_000 } = {}) {
  return waitUntil(
    async () => {
      const m = (await sender.state()).messages.find((x) => x.id === id);
      return m && by.every((p) => m.ackedBy.includes(p.id)) && m;
    },
    { what: `${sender.label} to get acks for ${id} from ${by.map((p) => p.label).join(', ')}`, timeout },
  );
}

// ---------------------------------------------------------------------------------------
// The headless native peer.

const running = new Set(); // NativePeers whose process has not exited
// Whatever a crashed test left running dies with this process (run.sh also kills anything
// left in its namespace).
process.on('exit', () => {
  for (const peer of running) peer.child.kill('SIGKILL');
});

/**
 * `confab peer` (PEER-API.md) as a peer of the same surface as WebPeer. It runs with `-v`,
 * so its log lines come as `log` events; those and everything else it writes go to
 * out/logs/LABEL.log. Its events are folded into the `state()` shape and also kept as they
 * came in `events`, for checks of the exact events (`waitForEvent`, `eventsOf`).
 */
export class NativePeer {
  /** A peer that has not started yet: `join` starts the process. */
  constructor(label, { args = [] } = {}) {
    this.label = label;
    this.args = args;
    this.id = null;
    this.child = null;
    this.exit = null; // {code, signal} once the process ended
    this.events = []; // every event but `log`, in order
    this.peers = new Map(); // id -> {id, name, state, channelOpen}
    this.messages = new Map(); // id -> message, as WebPeer's state() shows them
    this.pendingSends = []; // chat commands waiting for their chat-sent: {text, to, resolve, reject}
    this.waiters = new Set();
    this.stderr = '';
  }

  /** Starts `confab peer` in `room` and resolves once the server welcomed it. */
  async join(room, name, { password } = {}) {
    if (this.child) throw new Error(`${this.label} already started`);
    if (!env.bin || !env.wsUrl || !env.addr) throw new Error('CONFAB_BIN, CONFAB_WS and CONFAB_ADDR are needed: run through run.sh');
    mkdirSync(joinPath(env.out, 'logs'), { recursive: true });
    this.logFile = createWriteStream(joinPath(env.out, 'logs', `${this.label}.log`));
    // Gather on the namespace's own address, where the browser can reach it (the server
    // URL is not loopback, so the default would be every interface).
    const args = ['-v', 'peer', '--server', env.wsUrl, '--room', room, '--name', name, '--udp', env.addr];
    if (password) args.push('--password', password);
    args.push(...this.args);
    this.child = spawn(env.bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    running.add(this);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        running.delete(this);
        this.exit = { code, signal };
        if (!this.closing) step(`${this.label}: confab peer exited unexpectedly (code ${code}, signal ${signal})`);
        this.logFile.write(`# exited: code ${code}, signal ${signal}\n`);
        this.wake();
        resolve(this.exit);
      });
    });
    this.child.on('error', (err) => step(`${this.label}: ${err.message}`));
    this.child.stdin.on('error', () => {}); // a write after exit: the exit is reported instead
    createInterface({ input: this.child.stdout }).on('line', (line) => this.onLine(line));
    createInterface({ input: this.child.stderr }).on('line', (line) => {
      this.stderr += `${line}\n`;
      this.logFile.write(`stderr: ${line}\n`);
    });
    const welcome = await this.waitForEvent(
      (e) => (e.event === 'signaling' && e.state === 'connected') || e.event === 'error',
      { what: `${this.label} to be welcomed in ${room}` },
    );
    if (welcome.event === 'error') throw new Error(`${this.label} was refused: ${JSON.stringify(welcome)}`);
    this.id = welcome.id;
    step(`${this.label} (confab peer) joined ${room} as ${name} (${this.id})`);
    return this.state();
  }

  onLine(line) {
    this.logFile.write(`${line}\n`);
    let event;
    try {
      event = JSON.parse(line);
    } catch {
      this.events.push({ event: 'not-json', line });
      step(`${this.label}: stdout line that is not JSON: ${line}`);
      this.wake();
      return;
    }
    if (event.event === 'log') return;
    this.events.push(event);
    this.fold(event);
    this.wake();
  }

  fold(e) {
    const peer = (id) => {
      let p = this.peers.get(id);
      if (!p) {
        p = { id, name: id, state: 'new', channelOpen: false };
        this.peers.set(id, p);
      }
      return p;
    };
    switch (e.event) {
      case 'signaling':
        if (e.id) this.id = e.id;
        break;
      case 'peer-joined':
        peer(e.peer.id).name = e.peer.name;
        break;
      case 'peer-state':
        peer(e.peer).state = e.state;
        break;
      case 'channel':
        if (e.label === 'chat') peer(e.peer).channelOpen = e.state === 'open';
        break;
      case 'peer-left':
        this.peers.delete(e.id);
        break;
      case 'peers':
        for (const p of e.peers) Object.assign(peer(p.id), { name: p.name, state: p.state });
        break;
      case 'chat': {
        const known = this.messages.get(e.id);
        if (known) known.copies += 1;
        else {
          this.messages.set(e.id, {
            id: e.id,
            from: e.from,
            to: e.scope === 'direct' ? this.id : null,
            text: e.text,
            ts: e.ts,
            scope: e.scope,
            mine: false,
            sentTo: [],
            ackedBy: [],
            acks: 0,
            copies: 1,
          });
        }
        break;
      }
      case 'chat-sent': {
        const known = this.messages.get(e.id);
        if (known) {
          // A message that waited for a channel went out later.
          known.sentTo = [...new Set([...known.sentTo, ...e.to])];
          break;
        }
        const pending = this.pendingSends.shift();
        if (!pending) {
          step(`${this.label}: chat-sent ${e.id} that no command asked for`);
          break;
        }
        this.messages.set(e.id, {
          id: e.id,
          from: this.id,
          to: pending.to ?? null,
          text: pending.text,
          ts: Date.now(),
          scope: pending.to ? 'direct' : 'room',
          mine: true,
          sentTo: [...e.to],
          ackedBy: [],
          acks: 0,
          copies: 0,
        });
        pending.resolve(e.id);
        break;
      }
      case 'ack': {
        const m = this.messages.get(e.id);
        if (m?.mine) {
          m.acks += 1;
          if (!m.ackedBy.includes(e.peer)) m.ackedBy.push(e.peer);
        }
        break;
      }
      case 'error':
        // Errors about a chat command (too-large, unknown-peer, bad-command) answer the
        // oldest one instead of a chat-sent.
        if (!e.peer || e.code === 'unknown-peer') {
          if (['too-large', 'unknown-peer', 'bad-command'].includes(e.code) && this.pendingSends.length) {
            this.pendingSends.shift().reject(new Error(`${this.label}: ${e.code}: ${e.message}`));
          }
        }
        break;
      default:
        break;
    }
  }

  wake() {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Resolves with the first event (past or future) that `match` accepts. */
  waitForEvent(match, { what = 'an event', timeout = 15_000, from = 0 } = {}) {
    return new Promise((resolve, reject) => {
      let seen = from;
      const check = () => {
        for (; seen < this.events.length; seen += 1) {
          if (match(this.events[seen])) {
            done();
            resolve(this.events[seen]);
            return;
          }
        }
        if (this.exit) {
          done();
          reject(new Error(`${this.label} exited (${JSON.stringify(this.exit)}) while waiting for ${what}\n${this.stderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}`));
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** The events of one kind so far, e.g. eventsOf('error'). */
  eventsOf(kind) {
    return this.events.filter((e) => e.event === kind);
  }

  /** Writes one command line, e.g. {cmd: 'peers'}. */
  command(command) {
    if (!this.child || this.exit) throw new Error(`${this.label} is not running`);
    this.child.stdin.write(`${JSON.stringify(command)}\n`);
  }

  async state() {
    return {
      id: this.id,
      errors: this.eventsOf('error'),
      peers: [...this.peers.values()].map((p) => ({ ...p })),
      messages: [...this.messages.values()].map((m) => ({ ...m, sentTo: [...m.sentTo], ackedBy: [...m.ackedBy] })),
    };
  }

  /** Sends to the room (or one peer id) and resolves to the id `chat-sent` reports. */
  sendChat(text, { to } = {}) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.label}: no chat-sent for "${text}" within 10 s`)), 10_000);
      const settle = (fn) => (value) => {
        clearTimeout(timer);
        fn(value);
      };
      this.pendingSends.push({ text, to, resolve: settle(resolve), reject: settle(reject) });
      this.command(to ? { cmd: 'chat', text, to } : { cmd: 'chat', text });
    });
  }

  /** Sends `quit` and resolves to the exit ({code, signal}); kills it after `timeout`. */
  async close({ timeout = 5_000 } = {}) {
    if (!this.child) return null;
    if (this.exit) return this.exit;
    this.closing = true;
    try {
      this.command({ cmd: 'quit' });
      this.child.stdin.end();
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      step(`${this.label}: no exit ${timeout} ms after quit: killing it`);
      this.child.kill('SIGKILL');
    }, timeout);
    const exit = await this.exited;
    clearTimeout(timer);
    await new Promise((resolve) => this.logFile.end(resolve));
    return exit;
  }
}

// ---------------------------------------------------------------------------------------
// A check every kind of peer shares.

/** Long enough for a stray duplicate to show up after the first copy. */
export const SETTLE_MS = 300;

/**
 * Sends `text` from `from` (to the room, or with `direct` to `to[0]` only) and checks that
 * each of `to` gets it exactly once, with the right sender and scope, and that the sender
 * sees every ack (a page also shows each id once and its delivered tick; a native sender
 * gets exactly one `ack` event per receiver).
 */
export async function chatOnce(from, to, text, { direct = false } = {}) {
  const target = direct ? to[0] : undefined;
  const id = await from.sendChat(text, { to: target?.id });
  for (const receiver of to) {
    const got = await waitForChat(receiver, id);
    assert.equal(got.text, text);
    assert.equal(got.from, from.id);
    assert.equal(got.scope, direct ? 'direct' : 'room');
    assert.equal(got.mine, false);
  }
  const sent = await waitForAcks(from, id, to);
  assert.deepEqual([...sent.sentTo].sort(), to.map((p) => p.id).sort(), 'sent on exactly the intended channels');
  await sleep(SETTLE_MS);
  for (const receiver of to) {
    const got = (await receiver.state()).messages.find((m) => m.id === id);
    assert.equal(got.copies, 1, `${receiver.label} received ${id} once`);
    if (receiver.countShown) assert.equal(await receiver.countShown(id), 1, `${receiver.label} shows ${id} once`);
  }
  if (from.page) {
    await waitUntil(() => from.page.locator(`.msg[data-id="${id}"] .ticks[data-acked="true"]`).count(), {
      what: `${from.label} to show the delivered tick`,
    });
  } else {
    const mine = (await from.state()).messages.find((m) => m.id === id);
    assert.equal(mine.acks, to.length, `${from.label} got one ack per receiver for ${id}`);
  }
  step(`${from.label} → ${direct ? target.label : 'room'}: "${text}" delivered once and acked`);
  return id;
}
