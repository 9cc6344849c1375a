// `confab peer` across real (namespaced) networks: a LAN, NATs of both kinds, a TURN relay
// (coturn), no path at all, and random loss. Run through run.sh, which builds the lab
// (lab.sh), starts coturn and two signaling servers in it, and sets the environment.

import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';

import { WebPeer, chatOnce, launchBrowser, step, uniqueRoom, waitForMesh } from '../browser/lib.mjs';
import { LabPeer, inNs, knob, lab, turnCredentials } from './peers.mjs';

const here = new URL('.', import.meta.url).pathname;
const opened = [];

beforeEach(() => knob('reset')); // plain endpoint-independent NATs, no drops, no loss
afterEach(async () => {
  await Promise.all(opened.splice(0).map((peer) => peer.close()));
});

function peer(label, host, options) {
  const p = new LabPeer(label, host, options);
  opened.push(p);
  return p;
}

/**
 * The ICE flags a peer needs for `what` (`stun` or `turn`): none when the server hands out
 * its STUN and TURN servers in `welcome` (run.sh gives it --turn-url/--turn-secret-file
 * when the binary has them), else --ice flags made here.
 */
function iceArgs(what) {
  if (lab.serverIce) return [];
  if (what === 'stun') return ['--ice', `stun:${lab.turn}`];
  // --ice turn:USER:PASS@HOST splits USER from PASS at the first ':', so the REST username
  // cannot be EXPIRY:LABEL here; coturn also takes a bare EXPIRY.
  const { username, credential } = turnCredentials(null);
  return ['--ice', `stun:${lab.turn}`, '--ice', `turn:${username}:${credential}@${lab.turn}`];
}

async function chatBothWays(a, b) {
  await chatOnce(a, [b], `hello from ${a.label}`);
  await chatOnce(b, [a], `hello from ${b.label}`);
}

/** Joins a then b (the newcomer offers) and waits until each sees the other connected. */
async function connect(a, b, room, { timeout = 20_000 } = {}) {
  const started = Date.now();
  await a.join(room);
  await b.join(room);
  await waitForMesh([a, b], { timeout });
  const ms = Date.now() - started;
  step(`${a.label} <-> ${b.label} connected ${ms} ms after the first join`);
  return ms;
}

/** Both ends' stats, checked against the PEER-API contract and `expect`. */
async function checkStats(a, b, expect) {
  for (const [self, other] of [[a, b], [b, a]]) {
    const s = await self.stats(other);
    for (const field of ['rtt_ms', 'bytes_sent', 'bytes_received', 'candidate_type', 'local_candidate', 'remote_candidate', 'transport']) {
      assert.ok(field in s, `${self.label}'s stats have ${field}: ${JSON.stringify(s)}`);
    }
    assert.ok(s.bytes_sent > 0 && s.bytes_received > 0, `${self.label} counted bytes both ways`);
    expect(s, self, other);
  }
}

const candidate = /^(host|srflx|prflx|relay) (\d+\.\d+\.\d+\.\d+):(\d+)$/;
function parseCandidate(text, what) {
  const m = candidate.exec(text ?? '');
  assert.ok(m, `${what} is "TYPE ADDR:PORT": ${JSON.stringify(text)}`);
  return { type: m[1], addr: m[2], port: Number(m[3]) };
}

test('0. the servers: welcome carries TURN REST credentials that coturn takes; the bare server offers none', { timeout: 30_000 }, async (t) => {
  // From behind r1, as a peer would; Node 20 has WebSocket behind a flag, 22+ by default.
  const flags = typeof WebSocket === 'undefined' ? ['--no-warnings', '--experimental-websocket'] : [];
  const welcome = (ws) => JSON.parse(inNs('h1', process.execPath, [...flags, `${here}welcome.mjs`, ws, uniqueRoom('welcome')]));
  const bare = welcome(lab.wsBare);
  assert.ok(!bare.ice_servers?.length, `the bare server offers no ICE servers: ${JSON.stringify(bare.ice_servers)}`);
  if (!lab.serverIce) {
    t.skip('this confab server has no --turn-url: the peers get --ice flags instead');
    return;
  }
  const main = welcome(lab.ws);
  step(`welcome ice_servers: ${JSON.stringify(main.ice_servers)}`);
  const urls = main.ice_servers.flatMap((s) => s.urls);
  assert.ok(urls.includes(`stun:${lab.turn}`), 'offers coturn for STUN');
  const turn = main.ice_servers.find((s) => s.urls.includes(`turn:${lab.turn}`));
  assert.ok(turn, 'offers coturn for TURN');
  const [expiry, label] = turn.username.split(':');
  assert.equal(label, main.id, 'username is EXPIRY:PEER_ID');
  assert.ok(Number(expiry) >= Date.now() / 1000 + 12 * 3600 - 60, 'expires at least 12 h ahead');
  assert.equal(turn.credential, createHmac('sha1', lab.turnSecret).update(turn.username).digest('base64'), 'credential is base64 HMAC-SHA1(secret, username)');
  // coturn takes them: a relayed client-to-client exchange from behind r1.
  const out = inNs('h1', 'turnutils_uclient', ['-y', '-n', '5', '-u', turn.username, '-w', turn.credential, lab.ip.turn], { stdio: ['ignore', 'pipe', 'pipe'] });
  const totals = /tot_send_msgs=(\d+), tot_recv_msgs=(\d+)/.exec(out.split('\n').filter((l) => l.includes('tot_recv_msgs')).pop() ?? '');
  assert.ok(totals && Number(totals[1]) > 0 && totals[1] === totals[2], `turnutils_uclient relayed with the welcome's credentials:\n${out.slice(-600)}`);
  step(`turnutils_uclient relayed ${totals[2]}/${totals[1]} messages with the welcome's credentials`);
});

test('a. LAN pair (h3, h4), default all-interfaces mode: a direct host path', { timeout: 40_000 }, async () => {
  const a = peer('a-h3', 'h3');
  const b = peer('a-h4', 'h4');
  await connect(a, b, uniqueRoom('lan'));
  await chatBothWays(a, b);
  await checkStats(a, b, (s, self) => {
    assert.equal(s.candidate_type, 'host', `${self.label}: path type`);
    assert.match(s.local_candidate, /^host 192\.168\.50\.[23]:\d+$/);
    assert.match(s.remote_candidate, /^host 192\.168\.50\.[23]:\d+$/);
    assert.equal(s.transport, 'udp');
  });
});

test('b. two endpoint-independent NATs (h1, h2) with STUN: a hole-punched srflx/prflx path', { timeout: 40_000 }, async () => {
  const a = peer('b-h1', 'h1', { args: iceArgs('stun') });
  const b = peer('b-h2', 'h2', { args: iceArgs('stun') });
  await connect(a, b, uniqueRoom('eim'));
  await chatBothWays(a, b);
  await checkStats(a, b, (s, self) => {
    const [ownIp, ownWan, otherWan] = self === a ? [lab.ip.h1, lab.ip.r1, lab.ip.r2] : [lab.ip.h2, lab.ip.r2, lab.ip.r1];
    assert.ok(['srflx', 'prflx'].includes(s.candidate_type), `${self.label}: path type ${s.candidate_type}, wanted srflx or prflx`);
    const local = parseCandidate(s.local_candidate, 'local_candidate');
    const remote = parseCandidate(s.remote_candidate, 'remote_candidate');
    // The only way in is the other NAT's public mapping; ours is our LAN address or our mapping.
    assert.ok(['srflx', 'prflx'].includes(remote.type) && remote.addr === otherWan, `${self.label}: remote ${s.remote_candidate} is the other NAT's mapping`);
    assert.ok((local.type === 'host' && local.addr === ownIp) || (local.type !== 'relay' && local.addr === ownWan), `${self.label}: local ${s.local_candidate}`);
    assert.equal(s.transport, 'udp');
  });
});

test('c. two symmetric NATs, no UDP between them: through coturn, chat and a file', { timeout: 90_000 }, async () => {
  knob('nat', 'r1', 'fully-random');
  knob('nat', 'r2', 'fully-random');
  knob('drop_udp_between_routers');
  const files = joinPath(lab.out, 'files');
  const inbox = joinPath(files, 'c-inbox');
  rmSync(files, { recursive: true, force: true });
  mkdirSync(inbox, { recursive: true });
  const source = joinPath(files, 'c-relayed.bin');
  const data = randomBytes(200 * 1024 + 17);
  writeFileSync(source, data);
  const sha = createHash('sha256').update(data).digest('hex');

  const a = peer('c-h1', 'h1', { args: iceArgs('turn') });
  const b = peer('c-h2', 'h2', { args: [...iceArgs('turn'), '--auto-accept-files', inbox] });
  await connect(a, b, uniqueRoom('relay'), { timeout: 30_000 });
  await chatBothWays(a, b);
  await checkStats(a, b, (s, self) => {
    assert.equal(s.candidate_type, 'relay', `${self.label}: path type`);
    const local = parseCandidate(s.local_candidate, 'local_candidate');
    const remote = parseCandidate(s.remote_candidate, 'remote_candidate');
    assert.ok([local, remote].some((c) => c.type === 'relay' && c.addr === lab.ip.turn), `${self.label}: a relay candidate on coturn (${s.local_candidate} / ${s.remote_candidate})`);
    assert.equal(s.transport, 'udp');
  });

  const started = Date.now();
  const from = a.events.length;
  a.command({ cmd: 'send-file', to: b.id, path: source });
  const offered = await a.waitForEvent((e) => e.event === 'file-offered', { what: 'file-offered', from, timeout: 5_000 });
  assert.equal(offered.size, data.length);
  const incoming = await b.waitForEvent((e) => e.event === 'file-incoming' && e.file === offered.file, { what: 'file-incoming', timeout: 10_000 });
  assert.equal(incoming.sha256, sha);
  const got = await b.waitForEvent((e) => e.event === 'file-done' && e.file === offered.file, { what: `${b.label}'s file-done`, timeout: 45_000 });
  const sent = await a.waitForEvent((e) => e.event === 'file-done' && e.file === offered.file, { what: `${a.label}'s file-done`, timeout: 10_000 });
  assert.equal(got.ok, true, `${b.label}: file-done ok`);
  assert.equal(sent.ok, true, `${a.label}: file-done ok (the receiver's verdict)`);
  assert.equal(createHash('sha256').update(readFileSync(got.path)).digest('hex'), sha, 'the written file is the sent one');
  step(`${data.length} bytes through coturn in ${Date.now() - started} ms, written to ${got.path}`);
});

/**
 * A file of `bytes` random bytes from `a` to `b` (which auto-accepts into `inbox`): arrives
 * whole with the same sha256. Returns the MB/s it went at.
 */
async function fileArrivesIntact(a, b, inbox, name, bytes) {
  const files = joinPath(lab.out, 'files');
  rmSync(inbox, { recursive: true, force: true });
  mkdirSync(inbox, { recursive: true });
  const source = joinPath(files, name);
  const data = randomBytes(bytes);
  writeFileSync(source, data);
  const sha = createHash('sha256').update(data).digest('hex');
  const started = Date.now();
  const from = a.events.length;
  a.command({ cmd: 'send-file', to: b.id, path: source });
  const offered = await a.waitForEvent((e) => e.event === 'file-offered', { what: 'file-offered', from, timeout: 5_000 });
  const got = await b.waitForEvent((e) => e.event === 'file-done' && e.file === offered.file, { what: `${b.label}'s file-done`, timeout: 60_000 });
  assert.equal(got.ok, true, `${b.label}: file-done ok`);
  assert.equal(createHash('sha256').update(readFileSync(got.path)).digest('hex'), sha, 'the written file is the sent one');
  const ms = Date.now() - started;
  return data.length / ms / 1000;
}

test('h. two symmetric NATs, no UDP between them: through the server\'s built-in relay with no flag, chat and a file', { timeout: 90_000 }, async () => {
  knob('nat', 'r1', 'fully-random');
  knob('nat', 'r2', 'fully-random');
  knob('drop_udp_between_routers');
  const inbox = joinPath(lab.out, 'files', 'h-inbox');
  const a = peer('h-h1', 'h1', { ws: lab.wsBuiltin });
  const b = peer('h-h2', 'h2', { ws: lab.wsBuiltin, args: ['--auto-accept-files', inbox] });
  const setup = Date.now();
  await connect(a, b, uniqueRoom('builtin'), { timeout: 30_000 });
  await chatBothWays(a, b);
  step(`relayed chat both ways ${Date.now() - setup} ms after the join`);
  await checkStats(a, b, (s, self) => {
    assert.equal(s.candidate_type, 'relay', `${self.label}: path type`);
    const local = parseCandidate(s.local_candidate, 'local_candidate');
    const remote = parseCandidate(s.remote_candidate, 'remote_candidate');
    assert.ok([local, remote].some((c) => c.type === 'relay' && c.addr === lab.ip.signal), `${self.label}: a relay candidate on the signaling server (${s.local_candidate} / ${s.remote_candidate})`);
  });
  const mbps = await fileArrivesIntact(a, b, inbox, 'h-relayed.bin', 5 * 1024 * 1024 + 17);
  step(`a 5 MiB file through the built-in relay at ${mbps.toFixed(2)} MB/s`);
});

test('i. UDP blocked at r1: h1 reaches the built-in relay over TCP with no flag, chat and a file', { timeout: 90_000 }, async () => {
  knob('block_udp', 'r1');
  const inbox = joinPath(lab.out, 'files', 'i-inbox');
  const a = peer('i-h1', 'h1', { ws: lab.wsBuiltin });
  const b = peer('i-h2', 'h2', { ws: lab.wsBuiltin, args: ['--auto-accept-files', inbox] });
  const setup = Date.now();
  await connect(a, b, uniqueRoom('tcp'), { timeout: 30_000 });
  await chatBothWays(a, b);
  step(`chat both ways ${Date.now() - setup} ms after the join`);
  const s = await a.stats(b);
  assert.equal(s.candidate_type, 'relay', `${a.label}: path type (${JSON.stringify(s)})`);
  assert.equal(s.transport, 'tcp', `${a.label} reaches its relay over TCP (${JSON.stringify(s)})`);
  const local = parseCandidate(s.local_candidate, 'local_candidate');
  assert.equal(local.type, 'relay', `${a.label} sends from its relay candidate`);
  assert.equal(local.addr, lab.ip.signal, `${a.label}'s relay candidate is on the signaling server`);
  const mbps = await fileArrivesIntact(a, b, inbox, 'i-relayed.bin', 5 * 1024 * 1024 + 17);
  step(`a 5 MiB file through the built-in relay over TCP at ${mbps.toFixed(2)} MB/s`);
});

/** `confab check` against the built-in relay's server from `host`: its findings. */
function connectionTest(host) {
  const out = inNs(host, process.env.CONFAB_BIN, ['check', '--server', lab.wsBuiltin], { timeout: 30_000 });
  const findings = out.trim().split('\n').map((line) => JSON.parse(line));
  for (const f of findings) step(`${host} ${f.check}${f.transport ? ` over ${f.transport}` : ''}: ${f.ok} - ${f.words}`);
  return findings;
}

function finding(findings, check, transport) {
  const found = findings.find((f) => f.check === check && (transport === undefined || f.transport === transport));
  assert.ok(found, `a ${check} finding${transport ? ` over ${transport}` : ''} in ${JSON.stringify(findings)}`);
  return found;
}

test('j. the connection test: an endpoint-independent NAT, a symmetric one, and a router that lets no UDP out', { timeout: 90_000 }, async () => {
  let found = connectionTest('h1');
  assert.equal(finding(found, 'server').ok, true, 'the server answers');
  assert.equal(finding(found, 'reflexive').ok, true, 'STUN answers');
  assert.ok(finding(found, 'reflexive').words.includes(lab.ip.r1), 'h1 is seen at r1\'s address');
  assert.equal(finding(found, 'mapping').ok, true, 'masquerade keeps one mapping');
  assert.equal(finding(found, 'relay', 'udp').ok, true, 'a relay over UDP');
  assert.equal(finding(found, 'relay', 'tcp').ok, true, 'a relay over TCP');

  knob('nat', 'r1', 'fully-random');
  found = connectionTest('h1');
  assert.equal(finding(found, 'mapping').ok, false, 'a symmetric NAT is told as one');

  knob('reset');
  knob('block_udp', 'r1');
  found = connectionTest('h1');
  assert.equal(finding(found, 'server').ok, true, 'the server answers over TCP');
  assert.equal(finding(found, 'reflexive').ok, false, 'no STUN answer without UDP');
  assert.equal(finding(found, 'relay', 'udp').ok, false, 'no relay over UDP');
  assert.equal(finding(found, 'relay', 'tcp').ok, true, 'the relay over TCP still works');
});

test('k. the NAT under a running connection changes its mapping: back by ICE restart within 10 s, on the same peers and channel, nothing lost', { timeout: 60_000 }, async () => {
  const a = peer('k-h1', 'h1', { ws: lab.wsBuiltin });
  const b = peer('k-h2', 'h2', { ws: lab.wsBuiltin });
  await connect(a, b, uniqueRoom('moved'));
  await chatBothWays(a, b);
  const before = await a.stats(b);
  step(`before: ${before.candidate_type} ${before.local_candidate} -> ${before.remote_candidate}`);
  const from = { a: a.events.length, b: b.events.length };
  // r1 becomes endpoint-dependent and forgets its mappings (conntrack flushed): the pair's
  // packets now leave from another port, and r2 drops them.
  knob('nat', 'r1', 'fully-random');
  const cut = Date.now();
  const text = 'typed just after the mapping changed';
  a.command({ cmd: 'chat', text });
  await b.waitForEvent((e) => e.event === 'chat' && e.text === text, { what: `${b.label} to get the chat typed after the change`, from: from.b, timeout: 15_000 });
  const ms = Date.now() - cut;
  step(`the chat typed after the change arrived ${ms} ms later`);
  assert.ok(ms < 10_000, `back within 10 s (took ${ms} ms)`);
  for (const p of [a, b]) {
    const since = p.events.slice(from[p === a ? 'a' : 'b']);
    assert.ok(!since.some((e) => e.event === 'peer-left'), `${p.label} saw nobody leave`);
    // A fresh connection (the mesh's retry) would open a new chat channel; a restart keeps it.
    assert.ok(!since.some((e) => e.event === 'channel' && e.label === 'chat' && e.state === 'open'), `${p.label} kept the same chat channel`);
  }
  await chatBothWays(a, b);
  const after = await a.stats(b);
  step(`after: ${after.candidate_type} ${after.local_candidate} -> ${after.remote_candidate}`);
});

test('l. a Chromium page behind one symmetric NAT and confab peer behind the other: through the relay the server hands out', { timeout: 90_000 }, async () => {
  knob('nat', 'r1', 'fully-random');
  knob('nat', 'r2', 'fully-random');
  knob('drop_udp_between_routers');
  // Debian's chromium, run inside h1's namespace (chromium-in-netns.sh), on the page of
  // the server with the built-in relay: the page passes welcome.ice_servers straight to
  // RTCPeerConnection.
  const browser = await launchBrowser({
    executablePath: joinPath(here, 'chromium-in-netns.sh'),
    processEnv: { ...process.env, NETLAB_EXEC_NS: lab.ns.h1 },
  });
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(lab.wsBuiltin.replace(/^ws:/, 'http:').replace(/\/ws$/, '/'));
    await page.waitForFunction(() => Boolean(window.confab), null, { timeout: 10_000 });
    const web = new WebPeer('l-page-h1', context, page);
    const native = peer('l-h2', 'h2', { ws: lab.wsBuiltin });
    const room = uniqueRoom('browser');
    await web.join(room, 'Page');
    await native.join(room);
    await waitForMesh([web, native], { timeout: 30_000 });
    await chatOnce(web, [native], 'hello from the page');
    await chatOnce(native, [web], 'hello from confab peer');
    const s = await native.stats(web);
    assert.equal(s.candidate_type, 'relay', `the pair goes through the relay: ${JSON.stringify(s)}`);
    const remote = parseCandidate(s.remote_candidate, 'remote_candidate');
    const local = parseCandidate(s.local_candidate, 'local_candidate');
    assert.ok([local, remote].some((c) => c.type === 'relay' && c.addr === lab.ip.signal), `a relay candidate on the server (${s.local_candidate} / ${s.remote_candidate})`);
    assert.deepEqual(web.pageErrors, [], 'no page errors');
  } finally {
    await browser.close();
  }
});

test('d. two symmetric NATs, no UDP between them, STUN but no relay: ice fails, quit exits 0', { timeout: 45_000 }, async () => {
  knob('nat', 'r1', 'fully-random');
  knob('nat', 'r2', 'fully-random');
  knob('drop_udp_between_routers');
  // The bare server offers no ICE servers; the peers know coturn for STUN only.
  const args = ['--ice', `stun:${lab.turn}`];
  const a = peer('d-h1', 'h1', { ws: lab.wsBare, args });
  const b = peer('d-h2', 'h2', { ws: lab.wsBare, args });
  const room = uniqueRoom('nopath');
  await a.join(room);
  const started = Date.now();
  await b.join(room);
  const failed = (e) => (e.event === 'peer-state' && e.state === 'failed') || (e.event === 'error' && e.code === 'ice-failed');
  const [fa, fb] = await Promise.all(
    [a, b].map((p) => p.waitForEvent(failed, { what: `${p.label} to report the path failed (peer-state failed or ice-failed)`, timeout: 20_000 })),
  );
  step(`failure reported within ${Date.now() - started} ms: ${JSON.stringify(fa)} / ${JSON.stringify(fb)}`);
  for (const p of [a, b]) {
    assert.ok(!p.eventsOf('channel').some((e) => e.state === 'open'), `${p.label} never opened a channel`);
  }
  for (const p of [a, b]) {
    const t0 = Date.now();
    const exit = await p.close({ timeout: 5_000 });
    assert.deepEqual(exit, { code: 0, signal: null }, `${p.label} exits 0 on quit`);
    assert.ok(Date.now() - t0 < 5_000, `${p.label} quit within 5 s`);
    step(`${p.label} quit in ${Date.now() - t0} ms, exit 0`);
  }
});

// The issue's bar: at 5, 10 and 20 % random loss, every set-up in a row opens the chat
// channel with the hello both ways within 5 s. NETLAB_SETUPS sets how many per loss rate.
const setupsPerRate = Number(process.env.NETLAB_SETUPS ?? 20);
for (const perMille of [50, 100, 200]) {
  const percent = perMille / 10;
  test(`e. LAN pair with ${percent} % UDP loss on both hosts: ${setupsPerRate} fresh set-ups, each with the hello both ways within 5 s`, { timeout: 20_000 + setupsPerRate * 15_000 }, async () => {
    knob('loss', 'h3', String(perMille));
    knob('loss', 'h4', String(perMille));
    const results = [];
    for (let i = 1; i <= setupsPerRate; i++) {
      const a = peer(`e${perMille}-${i}-h3`, 'h3');
      const b = peer(`e${perMille}-${i}-h4`, 'h4');
      const room = uniqueRoom('lossy');
      let started = Date.now();
      let result;
      try {
        await a.join(room);
        // The clock starts when the second peer joins: from there on it is the set-up.
        started = Date.now();
        await b.join(room);
        const hello = (p, other) =>
          p.waitForEvent((e) => e.event === 'trust' && e.peer === other.id, {
            what: `${p.label}'s hello from ${other.label}`,
            timeout: Math.max(1, started + 5_000 - Date.now()),
          });
        await Promise.all([hello(a, b), hello(b, a)]);
        const helloMs = Date.now() - started;
        if (helloMs > 5_000) throw new Error(`the hellos took ${helloMs} ms`);
        let timer;
        await Promise.race([
          chatBothWays(a, b),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('chat both ways not acked within 10 s')), 10_000);
          }),
        ]).finally(() => clearTimeout(timer));
        result = { setup: i, ok: true, hello_ms: helloMs, total_ms: Date.now() - started };
      } catch (err) {
        result = { setup: i, ok: false, after_ms: Date.now() - started, error: err.message.split('\n')[0] };
      }
      results.push(result);
      step(`set-up ${i} under ${percent} % loss: ${JSON.stringify(result)}`);
      await Promise.all(opened.splice(0).map((p) => p.close()));
    }
    const failed = results.filter((r) => !r.ok);
    const slowest = Math.max(...results.filter((r) => r.ok).map((r) => r.hello_ms));
    step(`${percent} % loss: ${results.length - failed.length}/${results.length} set-ups, slowest hello ${slowest} ms`);
    assert.deepEqual(failed, [], `every set-up had its hellos within 5 s: ${JSON.stringify(results)}`);
  });
}

test('f. a connected LAN pair under 20 % UDP loss for 60 s: stays connected, no retries, and chats', { timeout: 120_000 }, async () => {
  const a = peer('f-h3', 'h3');
  const b = peer('f-h4', 'h4');
  const room = uniqueRoom('stays');
  await a.join(room);
  await b.join(room);
  const open = (p, other) =>
    p.waitForEvent((e) => e.event === 'channel' && e.label === 'chat' && e.state === 'open' && e.peer === other.id, {
      what: `${p.label}'s chat channel to ${other.label}`,
      timeout: 10_000,
    });
  await Promise.all([open(a, b), open(b, a)]);
  const from = Math.max(a.events.length, b.events.length);
  knob('loss', 'h3', '200');
  knob('loss', 'h4', '200');
  await new Promise((resolve) => setTimeout(resolve, 60_000));
  for (const [p, other] of [[a, b], [b, a]]) {
    const states = p.eventsOf('peer-state').filter((e) => e.peer === other.id).map((e) => e.state);
    assert.equal(states.at(-1), 'connected', `${p.label} still connected to ${other.label}: ${states}`);
    assert.ok(!states.includes('failed'), `${p.label} never failed: ${states}`);
  }
  await chatBothWays(a, b);
  step(`after 60 s at 20 % loss: connected both ways, chat acked (events from ${from})`);
});


// Throughput under loss, for the record rather than as a bar: a 16 MiB file on the LAN pair
// at 0, 1, 2 and 5 % UDP loss (MB/s, and the longest time the received byte count stood
// still). Run with --test-name-pattern=throughput.
test('g. throughput: a 16 MiB file on the LAN pair at 0, 1, 2 and 5 % loss', { timeout: 600_000 }, async () => {
  const files = joinPath(lab.out, 'files');
  rmSync(files, { recursive: true, force: true });
  const source = joinPath(files, 'g-16mib.bin');
  mkdirSync(files, { recursive: true });
  const data = randomBytes(16 << 20);
  writeFileSync(source, data);
  const rows = [];
  for (const perMille of [0, 10, 20, 50]) {
    knob('loss', 'h3', String(perMille));
    knob('loss', 'h4', String(perMille));
    const inbox = joinPath(files, `g-inbox-${perMille}`);
    mkdirSync(inbox, { recursive: true });
    const a = peer(`g${perMille}-h3`, 'h3');
    const b = peer(`g${perMille}-h4`, 'h4', { args: ['--auto-accept-files', inbox] });
    await connect(a, b, uniqueRoom('throughput'), { timeout: 30_000 });
    const from = b.events.length;
    const started = Date.now();
    a.command({ cmd: 'send-file', to: b.id, path: source });
    let lastBytes = 0;
    let lastMove = Date.now();
    let stall = 0;
    const got = await b.waitForEvent((e) => {
      if (e.event === 'file-progress' && e.bytes > lastBytes) {
        stall = Math.max(stall, Date.now() - lastMove);
        lastBytes = e.bytes;
        lastMove = Date.now();
      }
      return e.event === 'file-done';
    }, { what: `${b.label}'s file-done`, from, timeout: 180_000 });
    const seconds = (Date.now() - started) / 1000;
    assert.equal(got.ok, true);
    const row = { loss: `${perMille / 10} %`, mb_s: Number(((16 << 20) / 1e6 / seconds).toFixed(2)), seconds, longest_stall_ms: stall };
    rows.push(row);
    step(`16 MiB at ${row.loss} loss: ${JSON.stringify(row)}`);
    await Promise.all(opened.splice(0).map((p) => p.close()));
  }
  step(`throughput table: ${JSON.stringify(rows)}`);
});
