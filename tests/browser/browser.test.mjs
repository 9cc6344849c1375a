// The browser page against the real server, in real Chromium: run through run.sh.

import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';

import { WebPeer, chatOnce, env, launchBrowser, step, uniqueRoom, waitForMesh, waitUntil } from './lib.mjs';

let browser;
const opened = [];

before(async () => {
  step(`page ${env.pageUrl}, signaling ${env.wsUrl}`);
  browser = await launchBrowser();
  step(`Chromium ${browser.version()} up`);
});

// Whatever a test left open (a failure skips its own close) is closed, saving its log.
afterEach(async () => {
  await Promise.all(opened.splice(0).map((peer) => peer.close()));
});

after(async () => {
  await browser?.close();
});

async function open(label) {
  const peer = await WebPeer.open(browser, label);
  opened.push(peer);
  return peer;
}

function assertNoPageErrors(...peers) {
  for (const peer of peers) assert.deepEqual(peer.pageErrors, [], `${peer.label} had page errors`);
}

test('two pages: connect, chat both ways in the room and directly, see acks', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('two');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(room, 'Alice');
  await bob.join(room, 'Bob');
  await waitForMesh([alice, bob]);
  // A LAN address over plain http is no secure context (no crypto.randomUUID): the page
  // must work there all the same.
  step(`secure context: ${await alice.page.evaluate(() => window.isSecureContext)}`);

  // Names come from each side's hello.
  const aliceSees = (await alice.state()).peers;
  assert.deepEqual(aliceSees.map((p) => [p.id, p.name]), [[bob.id, 'Bob']]);
  const bobSees = (await bob.state()).peers;
  assert.deepEqual(bobSees.map((p) => [p.id, p.name]), [[alice.id, 'Alice']]);
  assert.equal(await alice.page.locator(`.peer[data-id="${bob.id}"][data-channel="open"]`).count(), 1);

  await chatOnce(alice, [bob], 'hello from Alice to the room');
  await chatOnce(bob, [alice], 'hello back from Bob to the room');
  await chatOnce(alice, [bob], 'a secret for Bob', { direct: true });
  await chatOnce(bob, [alice], 'and one for Alice ✓ ünïcödé', { direct: true });

  await alice.screenshot('two-alice');
  await bob.screenshot('two-bob');
  assertNoPageErrors(alice, bob);

  // Closing a page is a clean close of its socket: the other side forgets it at once.
  await alice.close();
  await waitUntil(async () => (await bob.state()).peers.length === 0, {
    what: 'bob to forget alice after she closed her page',
    timeout: 5_000,
  });
  assert.equal(await bob.page.locator('.peer').count(), 0);
  step('bob forgot alice after peer-left');
  await bob.close();
});

test('three pages: a full mesh, and a room message reaches both others once', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('three');
  const [a, b, c] = await Promise.all([open('p1'), open('p2'), open('p3')]);
  await a.join(room, 'One');
  // Two newcomers at the same moment: each pair must still learn of each other once.
  await Promise.all([b.join(room, 'Two'), c.join(room, 'Three')]);
  await waitForMesh([a, b, c]);

  await chatOnce(c, [a, b], 'three says hi to everyone');
  await chatOnce(a, [b, c], 'one answers everyone');
  const direct = await chatOnce(b, [c], 'two whispers to three', { direct: true });
  assert.equal((await a.state()).messages.some((m) => m.id === direct), false, 'a direct message stays direct');

  await Promise.all([a.screenshot('three-p1'), b.screenshot('three-p2'), c.screenshot('three-p3')]);
  assertNoPageErrors(a, b, c);
  await Promise.all([a.close(), b.close(), c.close()]);
});

test('offers that cross (glare) are settled by perfect negotiation', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('glare');
  const x = await open('x');
  const y = await open('y');
  await x.join(room, 'X');
  await y.join(room, 'Y');
  await waitForMesh([x, y]);
  const [polite, impolite] = x.id < y.id ? [x, y] : [y, x];

  // Both sides add a transceiver at the same moment, so both fire negotiationneeded and
  // offer before either offer arrives. Timing decides whether they really cross: try a
  // few times, and require that they crossed at least once.
  const renegotiate = (peer, other) =>
    peer.page.evaluate((id) => window.confab.peerConnection(id).addTransceiver('audio', { direction: 'recvonly' }), other.id);
  const settled = (peer, other) =>
    peer.page.evaluate((id) => {
      const pc = window.confab.peerConnection(id);
      const all = pc.getTransceivers();
      return pc.signalingState === 'stable' && all.every((t) => t.mid !== null) ? all.length : 0;
    }, other.id);
  const crossings = () => impolite.page.locator('#log .entry', { hasText: 'offers crossed' }).count();
  let attempts = 0;
  while (attempts < 10 && (await crossings()) === 0) {
    attempts += 1;
    await Promise.all([renegotiate(x, y), renegotiate(y, x)]);
    // Settled: stable on both sides, every transceiver negotiated, the same m-lines.
    await waitUntil(
      async () => {
        const [a, b] = await Promise.all([settled(x, y), settled(y, x)]);
        return a > 0 && a === b;
      },
      { what: `renegotiation ${attempts} to settle` },
    );
  }
  const crossed = await crossings();
  step(`offers crossed ${crossed} time(s) in ${attempts} renegotiation(s); ${polite.label} is polite`);
  assert.ok(crossed > 0, 'the offers never crossed: glare was not exercised');
  assert.equal(await polite.page.locator('#log .entry', { hasText: 'offers crossed' }).count(), 0, 'the polite side never ignores');

  // The connection and its channel survived: chat still flows both ways.
  const [xs, ys] = await Promise.all([x.state(), y.state()]);
  assert.ok(xs.peers[0].channelOpen && ys.peers[0].channelOpen);
  await chatOnce(x, [y], 'still here after glare');
  await chatOnce(y, [x], 'me too');
  assertNoPageErrors(x, y);
  const errors = await Promise.all([x, y].map((p) => p.page.locator('#log .entry[data-kind="error"]').count()));
  assert.deepEqual(errors, [0, 0], 'no errors in the logs');
});

test('a wrong password is refused and shown', { timeout: 30_000 }, async () => {
  const room = uniqueRoom('locked');
  const owner = await open('owner');
  await owner.join(room, 'Owner', { password: 'right' });
  const intruder = await open('intruder');
  const error = await intruder.joinExpectingError(room, 'Intruder', { password: 'wrong' });
  assert.equal(error?.code, 'bad-password');
  assert.equal(await intruder.page.isVisible('#errors'), true);
  assert.match(await intruder.page.textContent('#errors'), /bad-password/);
  // The form is usable again: the right password gets in.
  await intruder.join(room, 'Intruder', { password: 'right' });
  await waitForMesh([owner, intruder]);
  await intruder.screenshot('password-intruder');
  assertNoPageErrors(owner, intruder);
  await Promise.all([owner.close(), intruder.close()]);
});
