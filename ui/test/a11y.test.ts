import { beforeEach, describe, expect, it } from "vitest";

import { Actions } from "../src/actions";
import { FakeBackend } from "../src/backend-fake";
import { Store } from "../src/store";
import { AppView } from "../src/views/app";

let store: Store;
let app: AppView;

beforeEach(async () => {
  const backend = new FakeBackend({ onboarded: true, name: "Me" });
  store = new Store(null);
  const actions = new Actions(store, backend);
  app = new AppView(store, actions);
  document.body.replaceChildren(app.el);
  const boot = await backend.attach((event) => store.apply(event), (link) => store.offerInvite(link));
  store.setSettings(boot.settings);
  store.open("room");
  store.apply({ event: "signaling", state: "connected", id: "me", room: "lobby" });
  store.apply({ event: "peers", peers: [{ id: "p1", name: "Ada", state: "connected" }, { id: "p2", name: "Bob", state: "connected" }] });
  store.apply({ event: "call-state", call: "c1", peer: "p1", state: "active" });
  store.apply({ event: "file-incoming", file: "f1", from: "p1", name: "notes.txt", size: 10, sha256: "x" });
  store.flush();
});

/** The name a screen reader gives a control. */
function accessibleName(el: HTMLElement): string {
  const labelledBy = el.getAttribute("aria-labelledby");
  if (labelledBy) return labelledBy.split(" ").map((id) => document.getElementById(id)?.textContent ?? "").join(" ").trim();
  const aria = el.getAttribute("aria-label");
  if (aria) return aria.trim();
  if (el instanceof HTMLButtonElement) return (el.textContent ?? "").trim() || (el.title ?? "");
  const wrapping = el.closest("label");
  if (wrapping) return (wrapping.textContent ?? "").trim();
  if (el.id) return (document.querySelector(`label[for="${el.id}"]`)?.textContent ?? "").trim();
  return (el.getAttribute("placeholder") ?? "").trim();
}

/** The controls a user can reach now. */
function visibleControls(): HTMLElement[] {
  return [...app.el.querySelectorAll<HTMLElement>("button, input, select, textarea, [role=button]")].filter(
    (el) => !el.closest("[hidden]") && (el as HTMLInputElement).type !== "hidden",
  );
}

/** Every visible control of the window that has no name, described. */
function unnamed(): string[] {
  const controls = visibleControls();
  // Not a vacuous pass: the screen drawn has controls to check.
  expect(controls.length).toBeGreaterThan(5);
  return controls.filter((el) => accessibleName(el) === "").map((el) => el.outerHTML.slice(0, 120));
}

function unreachable(): string[] {
  return [...app.el.querySelectorAll<HTMLElement>("[tabindex]")]
    .filter((el) => !el.closest("[hidden]") && el.tabIndex < 0 && el.matches("button, input, select, textarea, a"))
    .map((el) => el.outerHTML.slice(0, 120));
}

describe("accessibility", () => {
  it("names every control of the room, a conversation, the call bar and an offered file", () => {
    expect(unnamed()).toEqual([]);
    store.open("p1");
    store.flush();
    expect(unnamed()).toEqual([]);
    expect(unreachable()).toEqual([]);
  });

  it("names every control of Settings and the logs", () => {
    store.setView("settings");
    store.flush();
    expect(unnamed()).toEqual([]);
    store.setView("logs");
    store.flush();
    expect(unnamed()).toEqual([]);
    expect(unreachable()).toEqual([]);
  });

  it("names every control of the invite prompt", () => {
    store.offerInvite("confab://join?server=ws%3A%2F%2F192.0.2.1%3A8787%2Fws&room=team");
    store.flush();
    expect(app.el.querySelector<HTMLElement>(".invite-prompt")?.hidden).toBe(false);
    expect(unnamed()).toEqual([]);
    expect(unreachable()).toEqual([]);
  });

  it("names every control of the first-run screen and the incoming-call prompt", () => {
    store.apply({ event: "call-incoming", call: "c2", from: "p2" });
    store.setView("onboarding");
    store.flush();
    expect(unnamed()).toEqual([]);
  });
});
