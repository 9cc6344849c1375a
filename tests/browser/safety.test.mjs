// Safety codes (PROTOCOL.md section 4) on the browser page: the page's pure-JS SHA-256
// (its fallback where crypto.subtle is missing, as on the plain-http LAN page the tests
// open), and the code per peer, equal at both ends of a page-page and a page-native
// connection. Run through run.sh.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, afterEach, before, test } from 'node:test';

import { NativePeer, WebPeer, env, launchBrowser, step, uniqueRoom, waitForMesh, waitUntil } from './lib.mjs';

let browser;
const opened = [];

before(async () => {
  step(`page ${env.pageUrl}, signaling ${env.wsUrl}, native peer ${env.bin}`);
  browser = await launchBrowser();
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((peer) => peer.close()));
});

after(async () => {
  await browser?.close();
});

async function openPage(label) {
  const peer = await WebPeer.open(browser, label);
  opened.push(peer);
  return peer;
}

function native(label) {
  const peer = new NativePeer(label);
  opened.push(peer);
  return peer;
}

const CODE = /^\d{3} \d{3} \d{3}$/;

/** The recipe of section 4, in Node, as a check of the page's own. */
function expectedCode(a, b) {
  const text = [a.toUpperCase(), b.toUpperCase()].sort().join('\n');
  const number = createHash('sha256').update(text, 'utf8').digest().readUInt32BE(0) % 1_000_000_000;
  return String(number).padStart(9, '0').replace(/^(\d{3})(\d{3})(\d{3})$/, '$1 $2 $3');
}

/** Waits for `page` to have a safety code for `other`, and checks the page shows it. */
async function pageCode(page, other) {
  const entry = await waitUntil(
    async () => (await page.state()).peers.find((p) => p.id === other.id && p.safetyCode),
    { what: `${page.label} to have a safety code for ${other.label}` },
  );
  assert.match(entry.safetyCode, CODE);
  const line = page.page.locator(`.safety-code[data-peer="${other.id}"]`);
  await waitUntil(async () => (await line.count()) === 1, { what: `${page.label} to show the code for ${other.label}` });
  assert.equal(await line.locator('code').textContent(), entry.safetyCode, 'the page shows the code it computed');
  assert.equal(await line.getAttribute('data-code'), entry.safetyCode);
  // The page follows the recipe, from the fingerprints of its two descriptions.
  const { local, remote } = entry.fingerprints;
  assert.match(local, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.match(remote, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.notEqual(local, remote);
  assert.equal(entry.safetyCode, expectedCode(local, remote), 'the page follows the recipe');
  return entry;
}

test('safety codes: the page hashes with its pure-JS SHA-256 here, matching known vectors', { timeout: 60_000 }, async () => {
  const page = await openPage('s-vectors');
  const context = await page.page.evaluate(() => ({ secure: window.isSecureContext, subtle: Boolean(globalThis.crypto?.subtle) }));
  step(`page secure context: ${context.secure}, crypto.subtle: ${context.subtle}`);
  // So the other tests exercise the fallback: the page is plain http on a LAN address.
  assert.equal(context.subtle, false, 'crypto.subtle is unavailable on the plain-http page (the fallback is used)');

  const sha = (text) => page.page.evaluate((t) => window.confab.sha256js(t), text);
  // FIPS 180-4 examples, and the empty message.
  assert.equal(await sha('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(await sha(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(
    await sha('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
  );
  // Every padding case (lengths around the 55/56/64-byte block edges), multi-byte UTF-8,
  // and a long message, against Node's SHA-256.
  const texts = [];
  for (let n = 0; n <= 200; n += 1) texts.push('x'.repeat(n));
  texts.push('ünïcödé ✓ 🎉'.repeat(7), 'a'.repeat(1_000_000));
  const got = await page.page.evaluate((all) => all.map((t) => window.confab.sha256js(t)), texts);
  texts.forEach((text, i) => assert.equal(got[i], createHash('sha256').update(text, 'utf8').digest('hex'), `SHA-256 of ${text.length} chars`));

  // The recipe: sorted (so symmetric), case-insensitive, nine digits in groups of three.
  const A = 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89';
  const B = '01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF';
  const codes = await page.page.evaluate(
    async ({ A, B }) => [await window.confab.safetyCode(A, B), await window.confab.safetyCode(B, A.toLowerCase())],
    { A, B },
  );
  assert.equal(codes[0], expectedCode(A, B));
  assert.equal(codes[1], codes[0]);
  assert.match(codes[0], CODE);
  assert.deepEqual(page.pageErrors, []);
});

test('two pages: each shows the same safety code for the other', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('safety-pages');
  const [w1, w2] = await Promise.all([openPage('s-web1'), openPage('s-web2')]);
  await w1.join(room, 'Web One');
  await w2.join(room, 'Web Two');
  await waitForMesh([w1, w2]);
  const [at1, at2] = await Promise.all([pageCode(w1, w2), pageCode(w2, w1)]);
  step(`${w1.label} shows ${at1.safetyCode} for ${w2.label}, ${w2.label} shows ${at2.safetyCode} for ${w1.label}`);
  assert.equal(at1.fingerprints.local, at2.fingerprints.remote, "each page's remote fingerprint is the other's local one");
  assert.equal(at1.fingerprints.remote, at2.fingerprints.local);
  assert.equal(at1.safetyCode, at2.safetyCode, 'both ends show the same code');
  await w1.screenshot('safety-pages-web1');
  assert.deepEqual([...w1.pageErrors, ...w2.pageErrors], []);
});

for (const newcomer of ['native', 'page']) {
  test(`a page and a native peer (the ${newcomer} offers): the same safety code at both ends`, { timeout: 60_000 }, async () => {
    const room = uniqueRoom(`safety-native-${newcomer}`);
    const web = await openPage(`s-web-${newcomer}`);
    const nat = native(`s-native-${newcomer}`);
    if (newcomer === 'native') {
      await web.join(room, 'Web');
      await nat.join(room, 'Native');
    } else {
      await nat.join(room, 'Native');
      await web.join(room, 'Web');
    }
    await waitForMesh([web, nat]);

    const at = nat.events.length;
    nat.command({ cmd: 'safety-code', peer: web.id });
    const answer = await nat.waitForEvent((e) => (e.event === 'safety-code' && e.peer === web.id) || e.event === 'error', {
      what: `${nat.label} to answer safety-code`,
      from: at,
    });
    assert.equal(answer.event, 'safety-code', `the native peer answers with a code: ${JSON.stringify(answer)}`);
    assert.match(answer.code, CODE);
    const mine = await pageCode(web, nat);
    step(`${nat.label} computes ${answer.code}, ${web.label} shows ${mine.safetyCode}`);
    assert.equal(mine.safetyCode, answer.code, "the page's code for the native peer equals the native peer's for the page");
    await web.screenshot(`safety-native-${newcomer}-web`);

    assert.deepEqual(web.pageErrors, []);
    assert.deepEqual(nat.eventsOf('error'), []);
    assert.deepEqual(await nat.close(), { code: 0, signal: null });
  });
}
