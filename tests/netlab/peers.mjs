// What the netlab tests share: where the lab is (from run.sh's environment), the lab's knobs
// (labctl.sh), and LabPeer: tests/browser/lib.mjs's NativePeer run inside one of the lab's
// host namespaces, against a given signaling server.

import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';

import { NativePeer, env as libEnv, step } from '../browser/lib.mjs';

const here = new URL('.', import.meta.url).pathname;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests through tests/netlab/run.sh`);
  return value;
}

/** Where things are; run.sh sets these. */
export const lab = {
  id: required('NETLAB_ID'),
  ns: Object.fromEntries(['pub', 'r1', 'r2', 'r3', 'h1', 'h2', 'h3', 'h4'].map((n) => [n, required(`NETLAB_NS_${n.toUpperCase()}`)])),
  ip: {
    signal: required('NETLAB_SIGNAL_IP'),
    turn: required('NETLAB_TURN_IP'),
    r1: required('NETLAB_R1_WAN'),
    r2: required('NETLAB_R2_WAN'),
    r3: required('NETLAB_R3_WAN'),
    h1: required('NETLAB_H1_IP'),
    h2: required('NETLAB_H2_IP'),
    h3: required('NETLAB_H3_IP'),
    h4: required('NETLAB_H4_IP'),
  },
  ws: required('CONFAB_WS'), // the server with --turn-url/--turn-secret-file when supported
  wsBare: required('NETLAB_WS_BARE'), // a server with no ICE servers to offer
  wsBuiltin: required('NETLAB_WS_BUILTIN'), // a server with its built-in relay, default flags
  serverIce: process.env.NETLAB_SERVER_ICE === '1', // does `ws`'s welcome carry ice_servers?
  turn: required('NETLAB_TURN'), // coturn's HOST:PORT
  turnSecret: required('NETLAB_TURN_SECRET'),
  bin: required('CONFAB_BIN'),
  out: required('CONFAB_OUT'),
};

/** One lab.sh knob (see labctl.sh), e.g. knob('nat', 'r1', 'fully-random'). */
export function knob(...args) {
  execFileSync(`${here}labctl.sh`, [lab.id, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** A command inside a lab namespace; resolves to its stdout. */
export function inNs(name, command, args, options = {}) {
  return execFileSync('ip', ['netns', 'exec', lab.ns[name], command, ...args], { encoding: 'utf8', timeout: 20_000, ...options });
}

/** TURN REST credentials for coturn's use-auth-secret: username EXPIRY[:LABEL]. */
export function turnCredentials(label, { ttl = 24 * 3600 } = {}) {
  const expiry = Math.floor(Date.now() / 1000) + ttl;
  const username = label ? `${expiry}:${label}` : `${expiry}`;
  const credential = createHmac('sha1', lab.turnSecret).update(username).digest('base64');
  return { username, credential };
}

const wrapper = `${here}in-netns.sh`;

/**
 * NativePeer (tests/browser/lib.mjs) inside host namespace `host` (h1..h4), on signaling
 * server `ws`, with extra `confab peer` flags `args`. NativePeer.join spawns `env.bin` with
 * `--server env.wsUrl ... --udp env.addr` before its first await; for that synchronous part
 * this points env.bin at in-netns.sh (which runs confab in the namespace and drops the
 * `--udp 0.0.0.0` given here, leaving the peer in its default all-interfaces mode), then
 * puts lib.mjs's settings back.
 */
export class LabPeer extends NativePeer {
  constructor(label, host, { ws = lab.ws, args = [] } = {}) {
    super(label, { args });
    this.host = host;
    this.ws = ws;
  }

  join(room, name, options) {
    const saved = { bin: libEnv.bin, wsUrl: libEnv.wsUrl, addr: libEnv.addr, out: libEnv.out };
    const savedEnv = { ns: process.env.NETLAB_EXEC_NS, bin: process.env.NETLAB_EXEC_BIN };
    Object.assign(libEnv, { bin: wrapper, wsUrl: this.ws, addr: '0.0.0.0', out: lab.out });
    process.env.NETLAB_EXEC_NS = lab.ns[this.host];
    process.env.NETLAB_EXEC_BIN = lab.bin;
    try {
      return super.join(room, name ?? this.label, options);
    } finally {
      Object.assign(libEnv, saved);
      restore('NETLAB_EXEC_NS', savedEnv.ns);
      restore('NETLAB_EXEC_BIN', savedEnv.bin);
    }
  }

  /** Sends `stats` and resolves to the `stats` event about peer `other`. */
  async stats(other, { timeout = 5_000 } = {}) {
    const from = this.events.length;
    this.command({ cmd: 'stats' });
    const stats = await this.waitForEvent((e) => e.event === 'stats' && e.peer === other.id, {
      what: `${this.label}'s stats about ${other.label}`,
      timeout,
      from,
    });
    step(`${this.label} stats about ${other.label}: ${JSON.stringify(stats)}`);
    return stats;
  }
}

function restore(name, value) {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
