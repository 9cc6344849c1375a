// A small W3C WebDriver client over HTTP (Node's fetch): enough to drive the app through
// tauri-driver. No dependencies.

import { execFileSync } from "node:child_process";

const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

/** Whether the app's single-instance name is still owned on the session bus: until it is
 * released, a new start hands its arguments to the leaving app and exits. */
export function instanceNameOwned() {
  if (!process.env.DBUS_SESSION_BUS_ADDRESS) return false;
  try {
    const reply = execFileSync(
      "dbus-send",
      ["--session", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
        "org.freedesktop.DBus.NameHasOwner", "string:app.confab.desktop.SingleInstance"],
      { encoding: "utf8" },
    );
    return /boolean true/.test(reply);
  } catch {
    return false;
  }
}

export class WebDriver {
  constructor(base) {
    this.base = base;
    this.session = null;
  }

  async request(method, path, body) {
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`${method} ${path}: HTTP ${response.status}: ${text.slice(0, 300)}`);
    }
    if (!response.ok || json.value?.error) {
      const v = json.value ?? {};
      throw new Error(`${method} ${path}: ${v.error ?? response.status}: ${v.message ?? text.slice(0, 300)}`);
    }
    return json.value;
  }

  /** Starts the app at `application` and opens a session on its window, with `args` on
   * its command line (an invite link, as the desktop passes one). */
  async start(application, args = []) {
    const value = await this.request("POST", "/session", {
      capabilities: { alwaysMatch: { "tauri:options": { application, args } } },
    });
    this.session = value.sessionId;
  }

  /** Ends the session, which closes the app, and waits for the app to release its
   * single-instance name: the session ends before the app has left its room, and a start
   * in between would hand its arguments to the leaving app and exit. */
  async stop() {
    if (!this.session) return;
    const session = this.session;
    this.session = null;
    await this.request("DELETE", `/session/${session}`);
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline && instanceNameOwned()) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  path(rest) {
    return `/session/${this.session}${rest}`;
  }

  async find(css) {
    const value = await this.request("POST", this.path("/element"), { using: "css selector", value: css });
    // W3C names the key; older JSON-wire drivers answer with `ELEMENT`.
    const id = value[ELEMENT] ?? value.ELEMENT;
    if (!id) throw new Error(`find ${css}: unexpected answer ${JSON.stringify(value)}`);
    return id;
  }

  async click(css) {
    await this.onElement(css, (id) => this.request("POST", this.path(`/element/${id}/click`), {}));
  }

  async clear(css) {
    await this.onElement(css, (id) => this.request("POST", this.path(`/element/${id}/clear`), {}));
  }

  async type(css, text) {
    await this.onElement(css, (id) => this.request("POST", this.path(`/element/${id}/value`), { text }));
  }

  /**
   * Finds `css` and acts on it. The app redraws parts of the page as events arrive, so an
   * element found a moment ago may have been replaced, or be hidden until the next frame:
   * then it is found again, for a few seconds.
   */
  async onElement(css, act, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await act(await this.find(css));
      } catch (error) {
        const retry = /stale element|not interactable|no such element/.test(error.message);
        if (!retry || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  /** Presses `key` on the keyboard, without releasing it (W3C actions, as a person holds
   * a key): the page gets one keydown. */
  async keyDown(key) {
    await this.request("POST", this.path("/actions"), {
      actions: [{ type: "key", id: "keyboard", actions: [{ type: "keyDown", value: key }] }],
    });
  }

  /** Releases `key`: the page gets its keyup. */
  async keyUp(key) {
    await this.request("POST", this.path("/actions"), {
      actions: [{ type: "key", id: "keyboard", actions: [{ type: "keyUp", value: key }] }],
    });
  }

  /** Runs a function body in the page; `args` arrive as `arguments`. */
  async exec(script, args = []) {
    return this.request("POST", this.path("/execute/sync"), { script, args });
  }

  async title() {
    return this.request("GET", this.path("/title"));
  }

  /** A PNG of the window, as a Buffer. */
  async screenshot() {
    const base64 = await this.request("GET", this.path("/screenshot"));
    return Buffer.from(base64, "base64");
  }

  /** Polls `script` in the page until it returns something truthy; returns that. */
  async waitFor(what, script, args = [], timeoutMs = 20000) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
      try {
        last = await this.exec(script, args);
        if (last) return last;
      } catch (error) {
        last = error.message;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** Waits until tauri-driver answers on `base`. */
export async function waitForDriver(base, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(`${base}/status`);
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`no WebDriver at ${base}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
