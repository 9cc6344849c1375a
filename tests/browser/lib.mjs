// Helpers for the real-browser tests. run.sh starts `confab server` inside a network
// namespace and runs the tests there, passing where things are through the environment.
//
// Every kind of participant is a "peer" with the same small surface, so one test can mix
// browser pages with other clients (e.g. a headless `confab peer` speaking JSON lines):
//   label                  a name for progress lines and screenshots
//   id                     its signaling peer id, once joined
//   join(room, name, opts) joins and resolves once the server welcomed it
//   state()                { id, peers: [{id, name, state, channelOpen}],
//                            messages: [{id, from, to, text, scope, mine, ackedBy, copies}] }
//   sendChat(text, {to})   sends to the room (or one peer id) and resolves to the message id
//   close()                leaves and releases everything
// The waits and checks below (waitForMesh, waitForChat, waitForAcks) only use state().

import { mkdirSync, writeFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
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

/** Headless Debian Chromium; never a downloaded browser. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: env.chromium,
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

/** One browser page with the Confab page open, in a context (profile) of its own. */
export class WebPeer {
  static async open(browser, label) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
    const page = await context.newPage();
    const peer = new WebPeer(label, context, page);
    await page.goto(env.pageUrl);
    await page.waitForFunction(() => Boolean(window.confab));
    return peer;
  }

  constructor(label, context, page) {
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
      if (msg.type() === 'error' || msg.type() === 'warning') step(`${label}: console ${msg.type()}: ${msg.text()}`);
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
