// The installed package: the app `apt-get install ./Confab_….deb` put on the system starts
// and shows its window (run.sh --deb installs it, then runs this).

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { WebDriver, waitForDriver } from "./webdriver.mjs";

const app = process.env.CONFAB_APP;
const driverUrl = process.env.CONFAB_DRIVER ?? "http://127.0.0.1:4444";
const out = process.env.CONFAB_OUT ?? "out";
const driver = new WebDriver(driverUrl);

before(async () => {
  await waitForDriver(driverUrl);
  mkdirSync(join(out, "screenshots"), { recursive: true });
});

after(async () => {
  await driver.stop().catch(() => undefined);
});

const entry = "/usr/share/applications/Confab.desktop";
const link = "confab://join?server=ws%3A%2F%2F192.0.2.1%3A8787%2Fws&room=team";

test("the package registers confab:// invite links with the desktop", () => {
  assert.ok(existsSync(entry), "a desktop entry is installed");
  const desktop = readFileSync(entry, "utf8");
  assert.match(desktop, /^MimeType=.*x-scheme-handler\/confab/m);
  // %u: the desktop hands the link to the app it starts.
  assert.match(desktop, /^Exec=confab-desktop %u$/m);
  const handler = execFileSync("xdg-mime", ["query", "default", "x-scheme-handler/confab"], { encoding: "utf8" });
  assert.equal(handler.trim(), "Confab.desktop");
});

test("the installed app opened with an invite fills in its first-run screen", async () => {
  await driver.start(app, [link]);
  await driver.waitFor(
    "the invite's server and room on the welcome screen",
    "const v = (f) => document.querySelector(`.onboarding [data-field=\"${f}\"]`)?.value; return v('server') === 'ws://192.0.2.1:8787/ws' && v('room') === 'team';",
  );
  writeFileSync(join(out, "screenshots", "installed-app-invite.png"), await driver.screenshot());
  await driver.stop();
});

test("the installed app starts and shows its first-run screen", async () => {
  await driver.start(app);
  assert.equal(await driver.title(), "Confab");
  await driver.waitFor(
    "the welcome screen",
    "const el = document.querySelector('.onboarding'); return !!el && !el.hidden && /Welcome to Confab/.test(el.textContent);",
  );
  writeFileSync(join(out, "screenshots", "installed-app.png"), await driver.screenshot());
});
