// The installed package: the app `apt-get install ./Confab_….deb` put on the system starts
// and shows its window (run.sh --deb installs it, then runs this).

import { existsSync, mkdirSync, writeFileSync } from "node:fs";
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
});

after(async () => {
  await driver.stop().catch(() => undefined);
});

test("the installed app starts and shows its first-run screen", async () => {
  assert.ok(existsSync("/usr/share/applications/Confab.desktop"), "a desktop entry is installed");
  await driver.start(app);
  assert.equal(await driver.title(), "Confab");
  await driver.waitFor(
    "the welcome screen",
    "const el = document.querySelector('.onboarding'); return !!el && !el.hidden && /Welcome to Confab/.test(el.textContent);",
  );
  mkdirSync(join(out, "screenshots"), { recursive: true });
  writeFileSync(join(out, "screenshots", "installed-app.png"), await driver.screenshot());
});
