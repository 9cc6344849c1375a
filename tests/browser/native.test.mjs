// The browser page against the headless native peer (`confab peer`), in real Chromium over
// the real server: run through run.sh.

import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';

import {
  NativePeer,
  SETTLE_MS,
  WebPeer,
  chatOnce,
  env,
  launchBrowser,
  sleep,
  step,
  uniqueRoom,
  waitForChat,
  waitForMesh,
  waitUntil,
} from './lib.mjs';

let browser;
const opened = [];

before(async () => {
  step(`page ${env.pageUrl}, signaling ${env.wsUrl}, native peer ${env.bin}`);
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

async function openPage(label, options) {
  const peer = await WebPeer.open(browser, label, options);
  opened.push(peer);
  return peer;
}

function native(label) {
  const peer = new NativePeer(label);
  opened.push(peer);
  return peer;
}

function assertClean(...peers) {
  for (const peer of peers) {
    if (peer.pageErrors) assert.deepEqual(peer.pageErrors, [], `${peer.label} had page errors`);
    else assert.deepEqual(peer.eventsOf('error'), [], `${peer.label} reported errors`);
  }
}

/** Quits a native peer and checks it left cleanly: exit 0, and gone from the pages. */
async function quitNative(peer, pages) {
  const exit = await peer.close();
  assert.deepEqual(exit, { code: 0, signal: null }, `${peer.label} exits 0 on quit`);
  for (const page of pages) {
    await waitUntil(async () => !(await page.state()).peers.some((p) => p.id === peer.id), {
      what: `${page.label} to forget ${peer.label}`,
      timeout: 5_000,
    });
  }
  step(`${peer.label} quit (exit 0) and the pages forgot it`);
}

test('a page and a native peer: connect, chat both ways in the room and directly, acks', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('native-two');
  const web = await openPage('a-web');
  const nat = native('a-native');
  await web.join(room, 'Web');
  // The native peer is the newcomer: it creates the channel and offers.
  await nat.join(room, 'Native');
  await waitForMesh([web, nat]);

  const opens = nat.eventsOf('channel').filter((e) => e.peer === web.id && e.label === 'chat' && e.state === 'open');
  assert.equal(opens.length, 1, 'the native peer reports the chat channel open once');
  assert.equal(await web.page.locator(`.peer[data-id="${nat.id}"][data-channel="open"]`).count(), 1);
  // Names come from each side's hello.
  await waitUntil(async () => (await web.state()).peers.find((p) => p.id === nat.id)?.name === 'Native', {
    what: "the page to show the native peer's name",
  });
  nat.command({ cmd: 'peers' });
  const { peers } = await nat.waitForEvent((e) => e.event === 'peers', { what: 'the peers answer' });
  assert.deepEqual(peers, [{ id: web.id, name: 'Web', state: 'connected' }]);

  await chatOnce(web, [nat], 'hello native, from the page');
  await chatOnce(nat, [web], 'hello page, from the native peer');
  await chatOnce(web, [nat], 'a direct one for the native peer', { direct: true });
  await chatOnce(nat, [web], 'and a direct one back ✓ ünïcödé 🎉', { direct: true });

  await web.screenshot('native-two-web');
  assertClean(web, nat);
  await quitNative(nat, [web]);
  assertClean(web);
});

test('two pages and a native peer: a 3-way mesh, room messages reach both others once', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('native-three');
  const [w1, w2] = await Promise.all([openPage('b-web1'), openPage('b-web2')]);
  const nat = native('b-native');
  await w1.join(room, 'Web One');
  // Two newcomers at the same moment, one of each kind.
  await Promise.all([nat.join(room, 'Native'), w2.join(room, 'Web Two')]);
  await waitForMesh([w1, w2, nat]);
  for (const page of [w1, w2]) {
    const opens = nat.eventsOf('channel').filter((e) => e.peer === page.id && e.label === 'chat' && e.state === 'open');
    assert.equal(opens.length, 1, `the native peer reports its channel to ${page.label} open once`);
  }

  await chatOnce(w1, [w2, nat], 'web one to the room');
  await chatOnce(w2, [w1, nat], 'web two to the room');
  await chatOnce(nat, [w1, w2], 'native to the room');
  const direct = await chatOnce(nat, [w2], 'native whispers to web two', { direct: true });
  await sleep(SETTLE_MS);
  assert.equal((await w1.state()).messages.some((m) => m.id === direct), false, 'a direct message stays direct');

  await Promise.all([w1.screenshot('native-three-web1'), w2.screenshot('native-three-web2')]);
  assertClean(w1, w2, nat);

  // A page that closes is a clean leave: the native peer reports it at once and goes on
  // with the other.
  const w1id = w1.id;
  await w1.close();
  await nat.waitForEvent((e) => e.event === 'peer-left' && e.id === w1id, { what: `${nat.label} to see ${w1.label} leave`, timeout: 5_000 });
  step(`${nat.label} saw ${w1.label} leave`);
  await chatOnce(nat, [w2], 'native to web two after web one left', { direct: true });

  await quitNative(nat, [w2]);
  assertClean(w2);
});

test('garbage from a page on the chat channel: the native peer reports it and carries on', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('native-garbage');
  const nat = native('c-native');
  const web = await openPage('c-web', { tap: true });
  // This time the page is the newcomer: it offers, the native peer answers.
  await nat.join(room, 'Native');
  await web.join(room, 'Web');
  await waitForMesh([web, nat]);

  const bad = [
    'not json',
    '{"id":"no-type","text":"a JSON object without type"}',
    '{"type":"chat","id":"wrong-typed","text":42,"ts":1,"scope":"room"}',
    '[1, 2, 3]',
    { binary: [0xff, 0xfe, 0x00] },
  ];
  const unknownType = '{"type":"frobnicate","id":"x","level":9000}';
  const errorsBefore = nat.eventsOf('error').length;
  for (const data of bad) await web.sendRaw(nat.id, data);
  await web.sendRaw(nat.id, unknownType);
  // A well-formed chat written by hand, with a field the protocol does not know (ignored),
  // sent twice as a sender that resends would: shown once, acked twice.
  const handmade = `hand-${Date.now()}`;
  const chat = JSON.stringify({ type: 'chat', id: handmade, text: 'made by hand', ts: Date.now(), scope: 'room', extra: true });
  await web.sendRaw(nat.id, chat);
  await web.sendRaw(nat.id, chat);

  // The channel is ordered: once the hand-made chat is in, everything before it was read.
  const got = await waitForChat(nat, handmade);
  assert.equal(got.text, 'made by hand');
  await waitUntil(() => nat.eventsOf('error').length - errorsBefore >= bad.length, {
    what: `${bad.length} errors from the native peer`,
  });
  const acksOf = async (id) => (await web.received()).filter((m) => m.type === 'ack' && m.id === id).length;
  await waitUntil(async () => (await acksOf(handmade)) >= 2, { what: 'an ack for each copy' });
  await sleep(SETTLE_MS);
  assert.equal(nat.eventsOf('chat').filter((e) => e.id === handmade).length, 1, 'the resent chat is shown once');
  assert.equal(await acksOf(handmade), 2, 'each copy is acked once');
  const errors = nat.eventsOf('error').slice(errorsBefore);
  for (const e of errors) step(`${nat.label} error: ${JSON.stringify(e)}`);
  assert.equal(errors.length, bad.length, 'one error per bad message, none for the unknown type');
  for (const e of errors) {
    assert.equal(e.code, 'bad-message');
    assert.equal(e.peer, web.id, 'the error names the page that sent the bad message');
  }
  assert.equal(nat.exit, null, 'the native peer is still running');

  // Both ways still work, as usual.
  await chatOnce(web, [nat], 'a normal message after the garbage');
  await chatOnce(nat, [web], 'still here');
  assert.deepEqual(web.pageErrors, []);
  await quitNative(nat, [web]);
});

// The protocol allows 64 KiB of text, so the chat's JSON is always over 64 KiB: both ends
// must advertise and accept a larger max-message-size.

test('a chat with the largest text allowed (64 KiB) goes both ways', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('native-large');
  const web = await openPage('d-web');
  const nat = native('d-native');
  await web.join(room, 'Web');
  await nat.join(room, 'Native');
  await waitForMesh([web, nat]);
  const text = 'x'.repeat(64 * 1024); // 65536 bytes of UTF-8: the limit, allowed
  const failures = [];

  const sent = await web.page.evaluate(
    ({ text, to }) => {
      try {
        return { id: window.confab.send(text, to) };
      } catch (err) {
        return { error: err.message };
      }
    },
    { text, to: nat.id },
  );
  if (sent.error) failures.push(`page → native: the page could not send: ${sent.error}`);
  else {
    await waitForChat(nat, sent.id, { timeout: 5_000 }).then(
      (got) => assert.equal(got.text.length, text.length),
      (err) => failures.push(`page → native: ${err.message}`),
    );
  }

  const id = await nat.sendChat(text, { to: web.id });
  await waitForChat(web, id, { timeout: 5_000 }).then(
    (got) => assert.equal(got.text.length, text.length),
    (err) => failures.push(`native → page: ${err.message} (chat-sent listed ${JSON.stringify(nat.messages.get(id)?.sentTo)})`),
  );
  for (const failure of failures) step(`64 KiB chat: ${failure}`);
  assert.deepEqual(failures, []);
});

// A page that leaves closes its chat channel before its connection: the native peer sees
// the channel close at once and stops sending room messages to it.

test('after a page leaves, room messages from the native peer go only to those still there', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('native-left');
  const [w1, w2] = await Promise.all([openPage('e-web1'), openPage('e-web2')]);
  const nat = native('e-native');
  await w1.join(room, 'Web One');
  await w2.join(room, 'Web Two');
  await nat.join(room, 'Native');
  await waitForMesh([w1, w2, nat]);
  const w1id = w1.id;
  await w1.close();
  await nat.waitForEvent((e) => e.event === 'peer-left' && e.id === w1id, { what: 'peer-left', timeout: 5_000 });
  // The page closed its connection when it left: the channel is closed by now.
  await nat.waitForEvent((e) => e.event === 'channel' && e.peer === w1id && e.state === 'closed', {
    what: `${nat.label} to see its channel to ${w1.label} closed`,
    timeout: 1_000,
  });
  const id = await nat.sendChat('native to the room after web one left');
  const sent = nat.messages.get(id);
  step(`chat-sent to ${JSON.stringify(sent.sentTo)}; still there: ${w2.id}`);
  assert.deepEqual(sent.sentTo, [w2.id], 'a room message goes to the peers in the room');
  await waitForChat(w2, id);
});
