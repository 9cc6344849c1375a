import { beforeEach, describe, expect, it } from "vitest";

import { Actions } from "../src/actions";
import { FakeBackend } from "../src/backend-fake";
import { PushToTalk } from "../src/ptt";
import { Store } from "../src/store";
import { AppView } from "../src/views/app";

let backend: FakeBackend;
let store: Store;
let app: AppView;
let actions: Actions;

function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0)).then(() => store.flush());
}

function $(selector: string): HTMLElement {
  const el = app.el.querySelector<HTMLElement>(selector);
  if (!el) throw new Error(`nothing matches ${selector}`);
  return el;
}

/** Switches push-to-talk in Settings, as the user does. */
async function switchPushToTalk(on: boolean): Promise<void> {
  $('[data-nav="settings"]').click();
  store.flush();
  const toggle = $('[data-field="push-to-talk"]') as HTMLInputElement;
  toggle.checked = on;
  toggle.dispatchEvent(new Event("change"));
  await settle();
}

/** Ada calls, and the call is taken. */
async function acceptAdasCall(): Promise<void> {
  store.apply({ event: "call-incoming", call: "c1", from: "p1" });
  store.flush();
  $('[data-action="accept-call"]').click();
  await settle();
}

beforeEach(async () => {
  backend = new FakeBackend({ onboarded: true, name: "Me" });
  store = new Store(null);
  actions = new Actions(store, backend);
  app = new AppView(store, actions);
  document.body.replaceChildren(app.el);
  const boot = await backend.attach((event, room) => store.apply(event, Date.now(), room), (link) => store.offerInvite(link));
  actions.downloads = boot.downloads ?? "";
  store.setSettings(boot.settings);
  store.switchRoom("r1");
  store.apply({ event: "signaling", state: "connected", id: "me", room: "lobby" });
  store.apply({ event: "peers", peers: [{ id: "p1", name: "Ada", state: "connected" }] });
  store.flush();
});

describe("views", () => {
  it("asks before joining the room of an invite opened while the app runs, password included", async () => {
    await actions.connect();
    store.apply({ event: "chat", id: "m1", from: "p1", text: "said in the lobby", ts: 1, scope: "room", author: { name: "Ada", key: "fp1" }, history: false });
    store.flush();
    expect(app.el.querySelector(".msg")).not.toBeNull();
    backend.openInvite("confab://join?server=ws%3A%2F%2F192.0.2.1%3A8787%2Fws&room=team");
    store.flush();
    expect($(".invite-prompt").hidden).toBe(false);
    expect($("#invite-title").textContent).toBe("Join the room “team”?");
    ($('[data-field="invite-password"]') as HTMLInputElement).value = "s3cret";
    $('[data-action="join-invite"]').click();
    await settle();
    await settle();
    expect(backend.settings.rooms.map((r) => [r.server, r.room])).toEqual([
      ["ws://127.0.0.1:8787/ws", "lobby"],
      ["ws://192.0.2.1:8787/ws", "team"],
    ]);
    expect(backend.sent).toContainEqual({ cmd: "connect", server: "ws://192.0.2.1:8787/ws", room: "team", name: "Me", password: "s3cret" });
    expect($(".invite-prompt").hidden).toBe(true);
    // The new room is on screen, beside the lobby: the lobby's messages are not shown as its.
    expect(store.state.current).toBe("r2");
    expect(app.el.querySelector(".msg")).toBeNull();
  });

  it("turns down an invite with Not now, and says when a link is not one", () => {
    backend.openInvite("confab://join?server=ws%3A%2F%2F192.0.2.1%3A8787%2Fws&room=team");
    store.flush();
    $('[data-action="dismiss-invite"]').click();
    store.flush();
    expect($(".invite-prompt").hidden).toBe(true);
    expect(backend.sent.some((c) => c.cmd === "connect")).toBe(false);
    backend.openInvite("confab://nothing");
    store.flush();
    expect(store.state.errors.map((e) => e.message)).toContain("That link is not a Confab invite.");
  });

  it("lists peers with their state, badges and RTT on hover", () => {
    store.apply({ event: "stats", peer: "p1", rtt_ms: 2.25, bytes_sent: 0, bytes_received: 0, candidate_type: "host" });
    store.apply({ event: "trust", peer: "p1", name: "Ada", fingerprint: "f", status: "verified" });
    store.flush();
    const row = $('[data-peer="p1"] button');
    expect(row.textContent).toContain("Ada");
    expect(row.textContent).toContain("connected directly on the local network");
    expect(row.textContent).toContain("verified");
    expect(row.title).toContain("round trip 2.3 ms");
  });

  it("names a path through NATs or a relay for what it is, with the pair on hover", () => {
    store.apply({
      event: "stats",
      peer: "p1",
      rtt_ms: 40,
      bytes_sent: 0,
      bytes_received: 0,
      candidate_type: "relay",
      local_candidate: "relay 198.51.100.2:50000",
      remote_candidate: "prflx 203.0.113.7:41000",
      transport: "tcp",
    });
    store.flush();
    const row = $('[data-peer="p1"] button') as HTMLButtonElement;
    expect(row.textContent).toContain("connected through a relay server over TCP");
    expect(row.title).toContain("path: relay 198.51.100.2:50000 ↔ prflx 203.0.113.7:41000");
    store.apply({ event: "stats", peer: "p1", rtt_ms: 30, bytes_sent: 0, bytes_received: 0, candidate_type: "srflx", transport: "udp" });
    store.flush();
    expect($('[data-peer="p1"] button').textContent).toContain("connected directly over the internet");
  });

  it("keeps the keyboard focus on a peer while the list redraws", () => {
    $('[data-peer="p1"] button').focus();
    store.apply({ event: "stats", peer: "p1", rtt_ms: 3, bytes_sent: 0, bytes_received: 0, candidate_type: "host" });
    store.flush();
    expect(document.activeElement).toBe($('[data-peer="p1"] button'));
    expect(($('[data-peer="p1"] button') as HTMLButtonElement).title).toContain("round trip 3.0 ms");
  });

  it("sends on Enter, keeps Shift+Enter as a new line, and ticks the message", async () => {
    const input = $(".composer-input") as HTMLTextAreaElement;
    input.value = "line one";
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", shiftKey: true, bubbles: true }));
    expect(backend.sent.filter((c) => c.cmd === "chat")).toHaveLength(0);
    input.value = "hello\nthere https://example.org";
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    expect(backend.sent).toContainEqual({ cmd: "chat", text: "hello\nthere https://example.org" });
    expect(input.value).toBe("");
    await settle();
    const message = $(".msg.own");
    expect(message.dataset.id).toBe("m1");
    expect(message.querySelector("a")?.getAttribute("href")).toBe("https://example.org");
    store.apply({ event: "chat-sent", id: "m1", to: ["p1"] });
    store.apply({ event: "ack", peer: "p1", id: "m1" });
    store.flush();
    expect($(".msg.own").dataset.delivery).toBe("delivered");
    expect($(".msg.own .ticks").textContent).toBe("✓✓");
  });

  it("lists a contact who is away, opens its past conversation and writes to it by key", async () => {
    store.apply({ event: "contacts", contacts: [{ key: "fp2", name: "Bea", earlier_names: ["B"], verified: true, last_seen: Date.now() - 5 * 60_000 }] });
    store.flush();
    expect($('[data-contact="fp2"] .state').textContent).toBe("away · seen 5 min ago");
    expect(($('[data-contact="fp2"] button') as HTMLButtonElement).title).toBe("Also known as B");
    $('[data-contact="fp2"] button').click();
    store.flush();
    expect(backend.sent).toContainEqual({ cmd: "history", key: "fp2" });
    expect($(".chat-header h1").textContent).toBe("Bea");
    const input = $(".composer-input") as HTMLTextAreaElement;
    input.value = "for when you are back";
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    expect(backend.sent).toContainEqual({ cmd: "chat", text: "for when you are back", to_key: "fp2" });
    await settle();
    expect($(".msg.own .text").textContent).toBe("for when you are back");
  });

  it("warns in the conversation of a peer whose name came with another key before", () => {
    store.apply({ event: "trust", peer: "p1", name: "Ada", fingerprint: "new", status: "changed" });
    $('[data-peer="p1"] button').click();
    store.flush();
    expect($(".trust-warning").textContent).toContain("Ada was known with another key before");
  });

  it("marks a message from the room's history as said earlier", () => {
    store.apply({ event: "chat", from: "p1", id: "h", text: "before you came", ts: 1, scope: "room", author: { name: "Bea", key: "fp2" }, history: true });
    store.flush();
    expect($(".msg.theirs .author").textContent).toBe("Bea");
    expect($(".msg.theirs .from-history").textContent).toBe("earlier");
  });

  it("shows others' text as text, never as markup", () => {
    store.apply({ event: "chat", from: "p1", id: "x", text: "<img src=x onerror=alert(1)>", ts: Date.now(), scope: "room", author: { name: "Ada", key: "fp1" }, history: false });
    store.flush();
    expect($(".msg.theirs .text").textContent).toBe("<img src=x onerror=alert(1)>");
    expect(app.el.querySelector(".msg.theirs img")).toBeNull();
  });

  it("opens a peer's conversation with an unread count until read", () => {
    store.apply({ event: "chat", from: "p1", id: "d1", text: "psst", ts: Date.now(), scope: "direct", author: { name: "Ada", key: "fp1" }, history: false });
    store.flush();
    expect($('[data-peer="p1"] .unread').textContent).toBe("1");
    $('[data-peer="p1"] button').click();
    store.flush();
    expect(app.el.querySelector('[data-peer="p1"] .unread')).toBeNull();
    expect($(".chat-header h1").textContent).toBe("Ada");
    expect(backend.sent).toContainEqual({ cmd: "history", peer: "p1" });
  });

  it("names who else is in a call the prompt invites into", () => {
    store.apply({
      event: "peers",
      peers: [
        { id: "p1", name: "Ada", state: "connected" },
        { id: "p2", name: "Bob", state: "connected" },
        { id: "p3", name: "Cy", state: "connected" },
      ],
    });
    store.apply({ event: "call-incoming", call: "c1", from: "p1", members: ["p2", "p3"] });
    store.flush();
    expect($(".incoming h2").textContent).toBe("Ada is calling");
    expect($(".incoming .sub").textContent).toBe("Voice call, with Bob and Cy");
  });

  it("prompts for an incoming call, then shows the call bar with meters and hangs up", async () => {
    store.apply({ event: "call-incoming", call: "c1", from: "p1" });
    store.flush();
    expect($(".incoming").hidden).toBe(false);
    expect($(".incoming h2").textContent).toBe("Ada is calling");
    expect($(".incoming .sub").textContent).toBe("Voice call");
    $('[data-action="accept-call"]').click();
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "accept-call", call: "c1" });
    store.apply({ event: "call-state", call: "c1", peer: "p1", state: "active" });
    store.apply({ event: "level", peer: "p1", dbfs: -30 });
    store.flush();
    expect($(".callbar").hidden).toBe(false);
    expect($(".call-title").textContent).toBe("In a call with Ada");
    expect($('.callbar [data-level="p1"]').getAttribute("aria-valuenow")).toBe("50");
    $('[data-action="mute"]').click();
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "mute", muted: true });
    expect($('[data-action="mute"]').textContent).toContain("Unmute");
    $('[data-action="hangup"]').click();
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "hangup" });
    expect($(".callbar").hidden).toBe(true);
  });

  it("adds someone to a running call from their conversation, the room and the call bar", async () => {
    store.apply({ event: "peers", peers: [{ id: "p1", name: "Ada", state: "connected" }, { id: "p2", name: "Bob", state: "connected" }, { id: "p3", name: "Cy", state: "connected" }] });
    store.apply({ event: "call-state", call: "c1", peer: "p1", state: "active" });
    store.flush();
    // Ada is in: her conversation says so, and nobody can add her twice.
    store.open("p1");
    store.flush();
    expect($('.chat [data-action="add-to-call"]').textContent).toContain("In the call");
    expect(($('.chat [data-action="add-to-call"]') as HTMLButtonElement).disabled).toBe(true);
    // Bob is not: his conversation adds him, and the call goes on meanwhile.
    store.open("p2");
    store.flush();
    const add = $('.chat [data-action="add-to-call"]') as HTMLButtonElement;
    expect(add.textContent).toContain("Add to call");
    add.click();
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "call", peers: ["p2"] });
    expect($(".call-title").textContent).toBe("In a call with Ada");
    store.apply({ event: "call-state", call: "c1", peer: "p2", state: "ringing" });
    store.flush();
    // The call bar offers whoever is left; the room header adds them all.
    const picker = $(".callbar select.add-to-call") as HTMLSelectElement;
    expect([...picker.options].map((o) => o.textContent)).toEqual(["Add to call…", "Cy"]);
    picker.value = "p3";
    picker.dispatchEvent(new Event("change"));
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "call", peers: ["p3"] });
    store.open("room");
    store.flush();
    $('[data-action="add-everyone"]').click();
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "call" });
    store.apply({ event: "call-state", call: "c1", peer: "p3", state: "ringing" });
    store.flush();
    expect(($('[data-action="add-everyone"]') as HTMLButtonElement).disabled).toBe(true);
  });

  it("keeps a peer's volume by its key, and gives it back when the key comes again", async () => {
    store.apply({ event: "trust", peer: "p1", name: "Ada", fingerprint: "key-ada", status: "unverified" });
    store.apply({ event: "call-state", call: "c1", peer: "p1", state: "active" });
    store.flush();
    const slider = $('.callbar input[type="range"]') as HTMLInputElement;
    slider.value = "50";
    slider.dispatchEvent(new Event("change"));
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "volume", peer: "p1", volume: 0.5 });
    expect(backend.settings.volumes).toEqual({ "key-ada": 0.5 });
    // Next run: Ada comes back under another id; her key brings her volume with it.
    store.apply({ event: "peers", peers: [{ id: "p7", name: "Ada", state: "connected" }] });
    store.apply({ event: "trust", peer: "p7", name: "Ada", fingerprint: "key-ada", status: "unverified" });
    await actions.restoreVolume("p7", "key-ada", "r1");
    expect(backend.sent).toContainEqual({ cmd: "volume", peer: "p7", volume: 0.5 });
    expect(store.state.peers.get("p7")?.volume).toBe(0.5);
    // Back to full volume: nothing is kept for her.
    store.apply({ event: "call-state", call: "c2", peer: "p7", state: "active" });
    store.flush();
    const again = $('.callbar input[type="range"]') as HTMLInputElement;
    again.value = "100";
    again.dispatchEvent(new Event("change"));
    await settle();
    expect(backend.settings.volumes).toEqual({});
  });

  it("keeps the microphone's processing switches in the settings", async () => {
    $('[data-nav="settings"]').click();
    store.apply({ event: "audio", input: "default", output: "default", noise_suppression: true, echo_cancellation: true });
    store.flush();
    const noise = $('[data-field="noise-suppression"]') as HTMLInputElement;
    noise.checked = false;
    noise.dispatchEvent(new Event("change"));
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "set-audio", noise_suppression: false, echo_cancellation: true });
    expect(backend.settings.noise_suppression).toBe(false);
    expect(backend.settings.echo_cancellation).toBe(true);
  });

  it("with push-to-talk, opens the microphone in a call only while Space is held", async () => {
    const window = new EventTarget() as unknown as Window;
    new PushToTalk(store, actions, window);
    const key = (type: string, target: EventTarget = document.body) => {
      const event = new KeyboardEvent(type, { key: " ", bubbles: true });
      Object.defineProperty(event, "target", { value: target });
      window.dispatchEvent(event);
    };
    await switchPushToTalk(true);
    expect(backend.settings.push_to_talk).toBe(true);

    key("keydown");
    await settle();
    expect(backend.sent.filter((c) => c.cmd === "mute")).toEqual([]);
    await acceptAdasCall();
    expect(backend.sent.at(-1)).toEqual({ cmd: "mute", muted: true });
    key("keydown");
    await settle();
    expect(backend.sent.at(-1)).toEqual({ cmd: "mute", muted: false });
    store.flush();
    expect($("[data-mic]").textContent).toBe("Talking");
    key("keyup");
    await settle();
    expect(backend.sent.at(-1)).toEqual({ cmd: "mute", muted: true });
    // Space typed in the message field is text, not talk.
    const before = backend.sent.length;
    key("keydown", document.createElement("textarea"));
    await settle();
    expect(backend.sent.length).toBe(before);
  });

  it("with push-to-talk, holds the desktop-wide shortcut, and the microphone opens only while it is held", async () => {
    const window = new EventTarget() as unknown as Window;
    const ptt = new PushToTalk(store, actions, window);
    await backend.attach((event) => store.apply(event), () => undefined, (held) => ptt.shortcut(held));
    await switchPushToTalk(true);
    expect(backend.talkShortcutGrabbed).toBe(true);
    expect($("[data-talk-shortcut]").textContent).toContain("Ctrl+Shift+Space anywhere on the desktop");

    await acceptAdasCall();
    expect($("[data-mic]").textContent).toBe("Hold Space or Ctrl+Shift+Space to talk");
    // The app applies the shortcut itself: the page only shows it, and sends nothing.
    const space = (type: string) => {
      const event = new KeyboardEvent(type, { key: " ", bubbles: true });
      Object.defineProperty(event, "target", { value: document.body });
      window.dispatchEvent(event);
    };
    const before = backend.sent.length;
    backend.pressTalkKey(true);
    await settle();
    expect(store.callState().call.muted).toBe(false);
    // Held from another program: the window losing focus does not close the microphone,
    // and neither does Space, which did not open it.
    window.dispatchEvent(new Event("blur"));
    space("keydown");
    space("keyup");
    await settle();
    expect(backend.sent.length).toBe(before);
    backend.pressTalkKey(false);
    await settle();
    expect(store.callState().call.muted).toBe(true);
    expect(backend.sent.length).toBe(before);

    // Space held meanwhile keeps the microphone open when the shortcut comes up.
    space("keydown");
    await settle();
    backend.pressTalkKey(true);
    backend.pressTalkKey(false);
    await settle();
    expect(backend.sent.at(-1)).toEqual({ cmd: "mute", muted: false });
    expect(store.callState().call.muted).toBe(false);
    space("keyup");
    await settle();
    expect(backend.sent.at(-1)).toEqual({ cmd: "mute", muted: true });

    // Switched off, the shortcut goes back to the desktop.
    await switchPushToTalk(false);
    expect(backend.talkShortcutGrabbed).toBe(false);
  });

  it("says push-to-talk works in the window only where the desktop keeps its keys", async () => {
    backend.desktopShortcuts = false;
    await switchPushToTalk(true);
    expect($("[data-talk-shortcut]").textContent).toContain("In this window only");
  });

  it("keeps a pressed button through a redraw, so the click it makes lands", async () => {
    const logs = $('[data-nav="logs"]');
    logs.dispatchEvent(new PointerEvent("pointerdown", { bubbles: true }));
    // Someone joins while the button is held: the sidebar redraws.
    store.apply({ event: "peer-joined", peer: { id: "p2", name: "Bo" } });
    store.flush();
    expect($('[data-nav="logs"]')).toBe(logs);
    logs.dispatchEvent(new PointerEvent("pointerup", { bubbles: true }));
    logs.click();
    await settle();
    expect(store.state.view).toBe("logs");
    // The redraw held back comes after the release.
    expect(app.el.querySelector('[data-name="Bo"]')).not.toBeNull();
  });

  it("says so when signaling drops while peers stay connected", () => {
    store.apply({ event: "signaling", state: "disconnected" });
    store.flush();
    expect($(".banner").textContent).toContain("Chats and calls with connected peers carry on");
    expect($('[data-action="reconnect"]')).toBeTruthy();
  });

  it("offers an incoming file with Accept, into the downloads folder, then shows progress", async () => {
    store.apply({ event: "file-incoming", file: "f1", from: "p1", name: "notes.txt", size: 2048, sha256: "x" });
    $('[data-peer="p1"] button').click();
    store.flush();
    expect($('[data-file="f1"]').textContent).toContain("wants to send you this file");
    ($('[data-file="f1"] button.primary') as HTMLButtonElement).click();
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "accept-file", file: "f1", dir: "/tmp" });
    store.apply({ event: "file-progress", file: "f1", peer: "p1", bytes: 1024, size: 2048 });
    store.flush();
    expect($('[data-file="f1"] progress').getAttribute("value")).toBe("50");
  });

  it("sends the file picked in the desktop's chooser, and nothing when it is cancelled", async () => {
    $('[data-peer="p1"] button').click();
    store.flush();
    const buttons = () => [...app.el.querySelectorAll<HTMLButtonElement>("button")];
    const open = () => buttons().find((b) => b.textContent === "File")?.click();
    const choose = () => buttons().find((b) => b.textContent === "Choose a file…")?.click();
    open();
    choose();
    await settle();
    expect(backend.sent.filter((c) => c.cmd === "send-file")).toHaveLength(0);
    backend.chosenFile = "/home/me/report.pdf";
    open();
    choose();
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "send-file", to: "p1", path: "/home/me/report.pdf" });
  });

  it("shows a peer's safety code and marks it verified", async () => {
    $('[data-peer="p1"] button').click();
    store.flush();
    const verify = [...app.el.querySelectorAll<HTMLButtonElement>(".chat-header button")].find((b) => b.textContent === "Verify");
    verify?.click();
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "safety-code", peer: "p1" });
    store.apply({ event: "safety-code", peer: "p1", code: "12345 67890" });
    store.flush();
    expect($(".safety-code").textContent).toBe("12345 67890");
    ($(".verify button.primary") as HTMLButtonElement).click();
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "verify", peer: "p1" });
    store.apply({ event: "trust", peer: "p1", name: "Ada", fingerprint: "f", status: "verified" });
    store.flush();
    expect($(".verify").textContent).toContain("You have verified Ada.");
  });

  it("disconnects from the server from Settings", async () => {
    $('[data-nav="settings"]').click();
    store.flush();
    $('[data-action="disconnect"]').click();
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "disconnect" });
    store.apply({ event: "signaling", state: "disconnected" });
    store.flush();
    expect(($('[data-action="disconnect"]') as HTMLButtonElement).disabled).toBe(true);
  });

  it("tests the connection to the server in the form, with the STUN/TURN servers typed, and says what it found", async () => {
    backend.findings = [
      { check: "server", ok: true, words: "The server answers (2 ms)." },
      { check: "mapping", ok: null, words: "Not known." },
      { check: "relay", transport: "udp", ok: false, words: "The relay over UDP did not answer." },
      { check: "relay", transport: "tcp", ok: true, words: "A relay over TCP works." },
    ];
    $('[data-nav="settings"]').click();
    store.flush();
    ($('.settings [data-field="server"]') as HTMLInputElement).value = "ws://192.0.2.7:8787/ws";
    ($('.settings [data-field="ice"]') as HTMLTextAreaElement).value = "stun:192.0.2.8:3478\n\n  turn:u:p@192.0.2.8:3478 ";
    const button = $('[data-action="connection-test"]') as HTMLButtonElement;
    button.click();
    expect(button.disabled).toBe(true);
    await settle();
    expect(backend.tested).toEqual([{ server: "ws://192.0.2.7:8787/ws", iceServers: ["stun:192.0.2.8:3478", "turn:u:p@192.0.2.8:3478"] }]);
    expect(button.disabled).toBe(false);
    const items = [...app.el.querySelectorAll(".connection-test li")].map((li) => [li.className, li.textContent]);
    expect(items).toEqual([
      ["works", "✓ The server answers (2 ms)."],
      ["unknown", "? Not known."],
      ["fails", "✗ The relay over UDP did not answer."],
      ["works", "✓ A relay over TCP works."],
    ]);
  });

  it("shows server errors in the banner, in plain words", () => {
    store.apply({ event: "error", code: "bad-password", message: "bad-password" });
    store.flush();
    expect($(".banner").textContent).toContain("Wrong password for this room.");
  });

  it("hosts a server from Settings and lists the addresses to share", async () => {
    $('[data-nav="settings"]').click();
    store.flush();
    const toggle = $('[data-field="host"]') as HTMLInputElement;
    toggle.checked = true;
    toggle.dispatchEvent(new Event("change"));
    await settle();
    await settle();
    expect(backend.host.running).toBe(true);
    expect($('[data-host="running"]').textContent).toContain("Running on port 8787");
    expect($(".addresses").textContent).toContain("ws://192.0.2.10:8787/ws");
  });

  it("runs the microphone test while Settings is open and shows the devices in use", async () => {
    $('[data-nav="settings"]').click();
    store.flush();
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "mic-test", on: true });
    expect(backend.sent).toContainEqual({ cmd: "devices" });
    store.apply({ event: "devices", inputs: [{ name: "USB Mic", default: true, id: "usb" }], outputs: [] });
    store.apply({
      event: "audio",
      input: "default",
      output: "default",
      input_name: "USB Mic",
      noise_suppression: true,
      echo_cancellation: false,
    });
    store.apply({ event: "level", dbfs: -30 });
    store.flush();
    expect($('[data-audio="in-use"]').textContent).toBe("In use: USB Mic → default");
    expect(($('[data-field="noise-suppression"]') as HTMLInputElement).checked).toBe(true);
    expect(($('[data-field="echo-cancellation"]') as HTMLInputElement).checked).toBe(false);
    expect(app.el.querySelector('[data-field="audio-in"] option[value="device:USB Mic"]')?.textContent).toBe("USB Mic (default)");
    expect($('.mic-test [data-level=""]').getAttribute("aria-valuenow")).toBe("50");
    $('[data-conv="room"]').click();
    store.flush();
    await settle();
    expect(backend.sent).toContainEqual({ cmd: "mic-test", on: false });
  });

  it("keeps what the user types in Settings while events refresh the screen", async () => {
    $('[data-nav="settings"]').click();
    store.flush();
    const port = $('.settings [data-field="port"]') as HTMLInputElement;
    port.value = "9999";
    port.dispatchEvent(new Event("input", { bubbles: true }));
    store.apply({ event: "devices", inputs: [], outputs: [] });
    store.setHost(await backend.hostState());
    store.setSettings({ ...store.state.settings });
    store.flush();
    expect(port.value).toBe("9999");
  });

  it("filters logs by level and peer and clears them", () => {
    store.apply({ event: "log", level: "debug", msg: "ice candidate", peer: "p1", ts: 1 });
    store.apply({ event: "log", level: "warn", msg: "signaling lost", ts: 2 });
    $('[data-nav="logs"]').click();
    store.flush();
    expect(app.el.querySelectorAll(".log-lines li")).toHaveLength(2);
    const level = app.el.querySelector<HTMLSelectElement>('select[aria-label="Lowest level shown"]');
    if (!level) throw new Error("no level filter");
    level.value = "warn";
    level.dispatchEvent(new Event("change"));
    expect(app.el.querySelectorAll(".log-lines li")).toHaveLength(1);
    $('[data-action="clear-logs"]').click();
    store.flush();
    expect(app.el.querySelectorAll(".log-lines li")).toHaveLength(0);
  });
});

describe("several rooms", () => {
  const team = { id: "r2", server: "ws://192.0.2.1:8787/ws", room: "team", password: "" };

  beforeEach(async () => {
    await actions.saveSettings({ ...store.state.settings, rooms: [...store.state.settings.rooms, team] });
    await actions.connect("r2");
    store.apply({ event: "signaling", state: "connected", id: "me2", room: "team" }, 0, "r2");
    store.apply({ event: "peers", peers: [{ id: "p9", name: "Bo", state: "connected" }] }, 0, "r2");
    store.flush();
  });

  it("lists each room with its unread count, and shows one without dropping the other", async () => {
    expect(backend.sentTo[backend.sent.findIndex((c) => c.cmd === "connect" && c.room === "team")]).toBe("r2");
    backend.emit({ event: "chat", id: "t1", from: "p9", text: "over here", ts: 1, scope: "room", author: { name: "Bo", key: "fp9" }, history: false }, "r2");
    store.flush();
    expect($('[data-room="r2"] .unread').textContent).toBe("1");
    expect(app.el.querySelector('[data-room="r1"] .unread')).toBeNull();
    expect(app.el.querySelector('[data-peer="p9"]')).toBeNull();

    ($('[data-room="r2"] button') as HTMLButtonElement).click();
    store.flush();
    expect($(".chat h1").textContent).toBe("team");
    expect($('[data-peer="p9"]')).not.toBeNull();
    expect(app.el.querySelector('[data-peer="p1"]')).toBeNull();
    expect(app.el.querySelector('[data-room="r2"] .unread')).toBeNull();
    expect($(".msg").textContent).toContain("over here");
    // What is typed here goes to this room's peer only.
    const composer = $(".composer-input") as HTMLTextAreaElement;
    composer.value = "hi team";
    composer.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    await settle();
    expect(backend.sentTo[backend.sent.findIndex((c) => c.cmd === "chat" && c.text === "hi team")]).toBe("r2");
    // Nothing was sent to leave the lobby.
    expect(backend.sent.filter((c) => c.cmd === "disconnect")).toEqual([]);
  });

  it("keeps the call bar of a call in another room, and ends it before calling here", async () => {
    await acceptAdasCall();
    store.apply({ event: "call-state", call: "c1", peer: "p1", state: "active" });
    store.switchRoom("r2");
    store.flush();
    expect($(".callbar").hidden).toBe(false);
    expect($(".call-title").textContent).toBe("In a call with Ada in lobby");
    expect($('[data-room="r1"] .room-call')).not.toBeNull();
    expect(app.el.querySelector('[data-action="show-call-room"]')?.textContent).toBe("Go to # lobby");
    $('[data-action="mute"]').click();
    await settle();
    expect(backend.sentTo[backend.sent.findIndex((c) => c.cmd === "mute")]).toBe("r1");
    await actions.call(null);
    const hangup = backend.sent.findIndex((c) => c.cmd === "hangup");
    expect(backend.sentTo[hangup]).toBe("r1");
    expect(backend.sentTo[backend.sent.findIndex((c, i) => i > hangup && c.cmd === "call")]).toBe("r2");
    // The new call is in the room on screen: no way to go there is offered.
    store.flush();
    expect(app.el.querySelector('[data-action="show-call-room"]')).toBeNull();
  });

  it("lists someone met here who is now in another room there, one click away", () => {
    store.apply({ event: "trust", peer: "p9", name: "Bo", fingerprint: "fp9", status: "unverified" }, 0, "r2");
    store.apply({ event: "contacts", contacts: [{ key: "fp9", name: "Bo", last_seen: 1, verified: false }] }, 0, "r1");
    store.flush();
    expect($('[data-elsewhere="r2"] .state').textContent).toBe("in # team");
    expect(app.el.querySelector('.away [data-contact="fp9"]')).toBeNull();
    ($('[data-elsewhere="r2"] button') as HTMLButtonElement).click();
    store.flush();
    expect(store.state.current).toBe("r2");
    expect(store.state.active).toBe("p9");
  });

  it("leaves one room from Settings and keeps the other", async () => {
    store.switchRoom("r2");
    $('[data-nav="settings"]').click();
    store.flush();
    expect(app.el.querySelectorAll("[data-joined-room]")).toHaveLength(2);
    $('[data-joined-room="r2"] [data-action="leave-room"]').click();
    await settle();
    expect(backend.settings.rooms.map((r) => r.id)).toEqual(["r1"]);
    expect(store.state.current).toBe("r1");
    expect(app.el.querySelector('[data-room="r2"]')).toBeNull();
    expect(store.state.peers.has("p1")).toBe(true);
  });

  it("joins another room from Settings beside the others", async () => {
    $('[data-nav="settings"]').click();
    store.flush();
    ($('.join-form [data-field="server"]') as HTMLInputElement).value = "ws://192.0.2.7:8787/ws";
    ($('.join-form [data-field="room"]') as HTMLInputElement).value = "games";
    $('[data-action="join-room-submit"]').click();
    await settle();
    expect(backend.settings.rooms.map((r) => [r.id, r.room])).toEqual([
      ["r1", "lobby"],
      ["r2", "team"],
      ["r3", "games"],
    ]);
    expect(store.state.current).toBe("r3");
    expect(backend.sentTo[backend.sent.findIndex((c) => c.cmd === "connect" && c.room === "games")]).toBe("r3");
  });
});

describe("invites", () => {
  it("shows the room's invite link, its browser link and its QR code", async () => {
    store.setSettings({ ...store.state.settings, rooms: [{ id: "r1", server: "ws://192.0.2.1:8787/ws", room: "lobby", password: "" }] });
    store.flush();
    $('[data-action="invite"]').click();
    await settle();
    const link = ($('[data-field="invite-link"]') as HTMLInputElement).value;
    expect(link).toBe("confab://join?server=ws%3A%2F%2F192.0.2.1%3A8787%2Fws&room=lobby");
    expect(($('[data-field="browser-link"]') as HTMLInputElement).value).toBe("http://192.0.2.1:8787/?room=lobby");
    expect(($(".invite img.qr") as HTMLImageElement).src).toContain("data:image/svg+xml");
  });
});

describe("first run", () => {
  it("lists the servers found on the network and joins one in one click", async () => {
    const fresh = new FakeBackend({ onboarded: false, name: "Bo" });
    fresh.found = [
      { name: "Ada's server", url: "ws://192.0.2.1:8787/ws", rooms: [{ room: "team", people: 2 }], people: 2 },
    ];
    const firstStore = new Store(null);
    const firstActions = new Actions(firstStore, fresh);
    const view = new AppView(firstStore, firstActions);
    document.body.replaceChildren(view.el);
    const boot = await fresh.attach((event) => firstStore.apply(event), () => undefined);
    firstStore.setSettings(boot.settings);
    firstStore.setView("onboarding");
    firstStore.flush();
    await new Promise((resolve) => setTimeout(resolve, 0));
    firstStore.flush();
    const found = view.el.querySelector<HTMLButtonElement>('[data-found="ws://192.0.2.1:8787/ws"]');
    expect(found?.textContent).toBe("Ada's server, 2 in team");
    found?.click();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(fresh.sent).toContainEqual({ cmd: "connect", server: "ws://192.0.2.1:8787/ws", room: "team", name: "Bo" });
    expect(fresh.settings.onboarded).toBe(true);
  });

  it("fills in the first-run screen from the invite the app was opened with", async () => {
    const fresh = new FakeBackend({ onboarded: false, name: "Bo" });
    fresh.invite = "confab://join?server=ws%3A%2F%2F192.0.2.1%3A8787%2Fws&room=team";
    const firstStore = new Store(null);
    const view = new AppView(firstStore, new Actions(firstStore, fresh));
    document.body.replaceChildren(view.el);
    const boot = await fresh.attach((event) => firstStore.apply(event), (link) => firstStore.offerInvite(link));
    firstStore.setSettings(boot.settings);
    if (boot.invite) firstStore.offerInvite(boot.invite);
    firstStore.setView("onboarding");
    firstStore.flush();
    expect(view.el.querySelector<HTMLInputElement>('.onboarding [data-field="server"]')?.value).toBe("ws://192.0.2.1:8787/ws");
    expect(view.el.querySelector<HTMLInputElement>('.onboarding [data-field="room"]')?.value).toBe("team");
    expect(view.el.querySelector<HTMLInputElement>('.onboarding [data-field="mode-join"]')?.checked).toBe(true);
    expect(view.el.querySelector<HTMLElement>(".invite-prompt")?.hidden).toBe(true);
  });

  it("fills in the server and room from a pasted invite", async () => {
    const fresh = new FakeBackend({ onboarded: false, name: "Bo" });
    const firstStore = new Store(null);
    const view = new AppView(firstStore, new Actions(firstStore, fresh));
    document.body.replaceChildren(view.el);
    firstStore.setSettings((await fresh.attach((event) => firstStore.apply(event), () => undefined)).settings);
    firstStore.setView("onboarding");
    firstStore.flush();
    const server = view.el.querySelector<HTMLInputElement>('.onboarding [data-field="server"]');
    if (!server) throw new Error("no server field");
    server.value = "confab://join?server=ws%3A%2F%2F192.0.2.1%3A8787%2Fws&room=team";
    server.dispatchEvent(new Event("input"));
    expect(server.value).toBe("ws://192.0.2.1:8787/ws");
    expect(view.el.querySelector<HTMLInputElement>('.onboarding [data-field="room"]')?.value).toBe("team");
  });
});
