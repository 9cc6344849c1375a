import { describe, expect, it } from "vitest";

import type { UnreadStorage } from "../src/store";
import { ROOM, Store, contactConversation, errorArea, plainError, secondsLeft } from "../src/store";

/** A storage of its own per store, as the webview's would be per install. */
function storage(): UnreadStorage & { items: Map<string, string> } {
  const items = new Map<string, string>();
  return { items, getItem: (k) => items.get(k) ?? null, setItem: (k, v) => void items.set(k, v) };
}

function joined(kept: UnreadStorage = storage()): Store {
  const store = new Store(kept);
  store.apply({ event: "signaling", state: "connected", id: "me", room: "lobby" });
  store.apply({ event: "peers", peers: [{ id: "p1", name: "Ada", state: "connecting" }] });
  return store;
}

describe("store", () => {
  it("tracks peers, their states, RTT and trust", () => {
    const store = joined();
    store.apply({ event: "peer-joined", peer: { id: "p2", name: "Bo" } });
    store.apply({ event: "peer-state", peer: "p1", state: "connected" });
    store.apply({ event: "stats", peer: "p1", rtt_ms: 1.5, bytes_sent: 1, bytes_received: 2, candidate_type: "host" });
    store.apply({ event: "trust", peer: "p1", name: "Ada", fingerprint: "ab", status: "verified" });
    const ada = store.state.peers.get("p1");
    expect(ada).toMatchObject({ state: "connected", rttMs: 1.5, candidate: "host", trust: "verified" });
    expect(store.state.peers.size).toBe(2);
    store.apply({ event: "peer-left", id: "p2" });
    expect([...store.state.peers.keys()]).toEqual(["p1"]);
    expect(store.state.room).toBe("lobby");
  });

  it("names own messages from chat-sent in order and ticks them from acks", () => {
    const store = joined();
    store.apply({ event: "peer-joined", peer: { id: "p2", name: "Bo" } });
    const first = store.addOwnMessage("one", null);
    const second = store.addOwnMessage("two", null);
    expect(first.delivery).toBe("pending");
    store.apply({ event: "chat-sent", id: "m1", to: ["p1", "p2"] });
    store.apply({ event: "chat-sent", id: "m2", to: [] });
    expect(first).toMatchObject({ id: "m1", delivery: "sent" });
    expect(second).toMatchObject({ id: "m2", delivery: "pending" });
    store.apply({ event: "ack", peer: "p1", id: "m1" });
    expect(first.delivery).toBe("sent");
    store.apply({ event: "ack", peer: "p2", id: "m1" });
    expect(first.delivery).toBe("delivered");
  });

  it("files messages by scope and counts unread ones outside the open conversation", () => {
    const store = joined();
    store.setView("chat");
    store.apply({ event: "chat", from: "p1", id: "a", text: "hi room", ts: 1, scope: "room", author: { name: "Ada", key: "fp1" }, history: false });
    store.apply({ event: "chat", from: "p1", id: "b", text: "hi you", ts: 2, scope: "direct", author: { name: "Ada", key: "fp1" }, history: false });
    store.apply({ event: "chat", from: "p1", id: "b", text: "hi you", ts: 2, scope: "direct", author: { name: "Ada", key: "fp1" }, history: false });
    expect(store.conversation(ROOM).messages.map((m) => m.text)).toEqual(["hi room"]);
    expect(store.conversation(ROOM).unread).toBe(0);
    expect(store.conversation("p1").messages).toHaveLength(1);
    expect(store.conversation("p1").unread).toBe(1);
    store.open("p1");
    expect(store.conversation("p1").unread).toBe(0);
  });

  it("notifies of messages and calls only while the window is not focused", () => {
    const store = joined();
    const shown: string[] = [];
    store.notifier = (title, body) => shown.push(`${title}: ${body}`);
    store.apply({ event: "chat", from: "p1", id: "a", text: "seen", ts: 1, scope: "room", author: { name: "Ada", key: "fp1" }, history: false });
    store.setFocused(false);
    store.apply({ event: "chat", from: "p1", id: "b", text: "away", ts: 2, scope: "direct", author: { name: "Ada", key: "fp1" }, history: false });
    store.apply({ event: "call-incoming", call: "c1", from: "p1" });
    expect(shown).toEqual(["Ada: away", "Incoming call: Ada is calling you"]);
  });

  it("places what a peer passes on from before in time order, quietly and once", () => {
    const store = joined();
    const shown: string[] = [];
    store.notifier = (title, body) => shown.push(`${title}: ${body}`);
    store.setFocused(false);
    const chat = (id: string, text: string, ts: number, history: boolean) => ({
      event: "chat" as const,
      from: "p1",
      id,
      text,
      ts,
      scope: "room" as const,
      author: { name: history ? "Bea" : "Ada", key: history ? "fp2" : "fp1" },
      history,
    });
    store.apply(chat("live", "now", 50, false));
    store.apply(chat("h2", "second", 20, true));
    store.apply(chat("h1", "first", 10, true));
    store.apply(chat("h1", "first", 10, true));
    const messages = store.conversation(ROOM).messages;
    expect(messages.map((m) => m.text)).toEqual(["first", "second", "now"]);
    expect(messages.map((m) => m.fromHistory)).toEqual([true, true, false]);
    // Named by their author, not by the peer that passed them on.
    expect(messages[0]?.name).toBe("Bea");
    expect(store.conversation(ROOM).unread).toBe(1);
    expect(shown).toEqual(["Ada in lobby: now"]);
  });

  it("keeps rooms apart: another room's messages count there, and its people show when it does", () => {
    const kept = storage();
    const store = new Store(kept);
    const shown: string[] = [];
    store.notifier = (title, body) => shown.push(`${title}: ${body}`);
    store.focused = true;
    store.state.view = "chat";
    store.switchRoom("r1");
    store.apply({ event: "signaling", state: "connected", id: "me", room: "lobby" }, 0, "r1");
    store.apply({ event: "peers", peers: [{ id: "p1", name: "Ada", state: "connected" }] }, 0, "r1");
    store.apply({ event: "signaling", state: "connected", id: "me2", room: "team" }, 0, "r2");
    store.apply({ event: "peers", peers: [{ id: "p9", name: "Bo", state: "connected" }] }, 0, "r2");
    store.apply({ event: "chat", id: "t1", from: "p9", text: "over here", ts: 1, scope: "room", author: { name: "Bo", key: "fp9" }, history: false }, 0, "r2");
    store.apply({ event: "chat", id: "t2", from: "p9", text: "hello?", ts: 2, scope: "room", author: { name: "Bo", key: "fp9" }, history: false }, 0, "r2");
    // The lobby is on screen: its people only, and the team's messages wait unread.
    expect([...store.state.peers.keys()]).toEqual(["p1"]);
    expect(store.conversation(ROOM).messages).toHaveLength(0);
    expect(store.roomUnread("r2")).toBe(2);
    expect(store.roomUnread("r1")).toBe(0);
    // Even in front, a room not on screen is not being read: it notifies, named.
    store.focused = false;
    store.apply({ event: "chat", id: "t3", from: "p9", text: "ping", ts: 3, scope: "room", author: { name: "Bo", key: "fp9" }, history: false }, 0, "r2");
    expect(shown).toEqual(["Bo in team: ping"]);
    store.focused = true;

    // The counts outlive the run, per room, also when another room is shown (and the
    // counts written back) after the room's first event and before it joined.
    const again = new Store(kept);
    again.apply({ event: "log", level: "info", msg: "starting", ts: 0 }, 0, "r2");
    again.switchRoom("r1");
    again.apply({ event: "signaling", state: "connected", id: "me2", room: "team" }, 0, "r2");
    expect(again.roomUnread("r2")).toBe(3);
    expect(again.roomUnread("r1")).toBe(0);

    store.switchRoom("r2");
    expect([...store.state.peers.keys()]).toEqual(["p9"]);
    expect(store.conversation(ROOM).messages.map((m) => m.text)).toEqual(["over here", "hello?", "ping"]);
    expect(store.roomUnread("r2")).toBe(0);
    // Own messages are named by their own room's chat-sent.
    const mine = store.addOwnMessage("here now", null);
    store.apply({ event: "chat-sent", id: "x1", to: ["p1"] }, 0, "r1");
    expect(mine.id).not.toBe("x1");
    store.apply({ event: "chat-sent", id: "t4", to: ["p9"] }, 0, "r2");
    expect(mine.id).toBe("t4");
  });

  it("shows a room's connection errors only while it is on screen", () => {
    const store = new Store(storage());
    store.switchRoom("r1");
    store.apply({ event: "error", code: "server-unreachable", message: "refused" }, 0, "r2");
    expect(store.errorsIn("connection")).toHaveLength(0);
    store.switchRoom("r2");
    expect(store.errorsIn("connection")).toHaveLength(1);
    // A device's trouble is the app's, whichever room met it.
    store.apply({ event: "error", code: "audio-in", message: "no microphone" }, 0, "r1");
    expect(store.errorsIn("audio")).toHaveLength(1);
  });

  it("keeps unread counts across restarts, by room name and by key", () => {
    const kept = storage();
    const before = joined(kept);
    before.setView("chat");
    before.apply({ event: "trust", peer: "p1", name: "Ada", fingerprint: "fp1", status: "unverified" });
    before.setFocused(false);
    const chat = (id: string, scope: "room" | "direct") => ({
      event: "chat" as const,
      from: "p1",
      id,
      text: id,
      ts: 1,
      scope,
      author: { name: "Ada", key: "fp1" },
      history: false,
    });
    before.apply(chat("r1", "room"));
    before.apply(chat("r2", "room"));
    before.apply(chat("d1", "direct"));

    // The next run: Ada comes back under another id, and is known by her key.
    const after = new Store(kept);
    after.apply({ event: "signaling", state: "connected", id: "me2", room: "lobby" });
    after.apply({ event: "peers", peers: [{ id: "p9", name: "Ada", state: "connecting" }] });
    expect(after.conversation(ROOM).unread).toBe(2);
    after.apply({ event: "trust", peer: "p9", name: "Ada", fingerprint: "fp1", status: "unverified" });
    expect(after.conversation("p9").unread).toBe(1);
    after.open("p9");
    expect(new Store(kept).conversation(contactConversation("fp1")).unread).toBe(0);
  });

  it("lists contacts who are not here as away, and files their history by key", () => {
    const store = joined();
    store.apply({ event: "trust", peer: "p1", name: "Ada", fingerprint: "fp1", status: "unverified" });
    store.apply({
      event: "contacts",
      contacts: [
        { key: "fp1", name: "Ada", verified: false, last_seen: 5 },
        { key: "fp2", name: "Bea", verified: true, last_seen: 3 },
        { key: "fp3", name: "Cy", verified: false, last_seen: 4 },
      ],
    });
    expect(store.awayContacts().map((c) => c.name)).toEqual(["Cy", "Bea"]);
    expect(store.peerName(contactConversation("fp2"))).toBe("Bea");
    store.apply({
      event: "history",
      key: "fp2",
      messages: [{ id: "h1", from: "fp2", name: "Bea", text: "bye", ts: 1, scope: "direct", author: { name: "Bea", key: "fp2" }, state: "received" }],
    });
    expect(store.conversation(contactConversation("fp2")).messages.map((m) => m.text)).toEqual(["bye"]);
  });

  it("merges history once, oldest first, with own messages marked", () => {
    const store = joined();
    store.apply({ event: "chat", from: "p1", id: "new", text: "live", ts: 50, scope: "room", author: { name: "Ada", key: "fp1" }, history: false });
    const history = {
      event: "history" as const,
      messages: [
        { id: "h1", name: "Me", text: "mine", ts: 10, scope: "room" as const, author: { name: "Me", key: "me" }, state: "delivered" as const },
        { id: "h2", from: "fp", name: "Ada", text: "theirs", ts: 20, scope: "room" as const, author: { name: "Ada", key: "fp" }, state: "received" as const },
      ],
    };
    store.apply(history);
    store.apply(history);
    const messages = store.conversation(ROOM).messages;
    expect(messages.map((m) => m.id)).toEqual(["h1", "h2", "new"]);
    expect(messages[0]).toMatchObject({ own: true, delivery: "delivered" });
  });

  it("follows a call from ringing to active to ended, with levels and mute", () => {
    const store = joined();
    store.startCalling();
    store.apply({ event: "call-state", call: "c1", peer: "p1", state: "ringing" });
    expect(store.state.call).toMatchObject({ id: "c1", phase: "calling" });
    store.apply({ event: "call-state", call: "c1", peer: "p1", state: "active" });
    expect(store.state.call.phase).toBe("active");
    store.apply({ event: "level", dbfs: -12 });
    store.apply({ event: "level", peer: "p1", dbfs: -20 });
    expect(store.state.levels.get("")).toBe(-12);
    expect(store.state.levels.get("p1")).toBe(-20);
    store.apply({ event: "muted", muted: true });
    store.apply({ event: "muted", peer: "p1", muted: true });
    expect(store.state.call.muted).toBe(true);
    expect(store.state.peers.get("p1")?.muted).toBe(true);
    store.apply({ event: "call-state", call: "c1", peer: "p1", state: "ended" });
    expect(store.state.call.phase).toBe("idle");
    expect(store.state.levels.size).toBe(0);
  });

  it("shows a declined call as an error in the call area", () => {
    const store = joined();
    store.startCalling();
    store.apply({ event: "call-state", call: "c1", peer: "p1", state: "declined" });
    expect(store.state.call.phase).toBe("idle");
    expect(store.errorsIn("call")[0]?.message).toBe("Ada declined the call.");
  });

  it("keeps incoming file offers and their progress", () => {
    const store = joined();
    store.apply({ event: "file-incoming", file: "f1", from: "p1", name: "a.txt", size: 10, sha256: "x" });
    store.apply({ event: "file-progress", file: "f1", peer: "p1", bytes: 5, size: 10 });
    expect(store.state.transfers.get("f1")).toMatchObject({ status: "moving", bytes: 5, incoming: true });
    store.apply({ event: "file-done", file: "f1", peer: "p1", ok: true, path: "/tmp/a.txt" });
    expect(store.state.transfers.get("f1")).toMatchObject({ status: "done", bytes: 10, path: "/tmp/a.txt" });
  });

  it("measures a transfer's throughput and time left from its progress", () => {
    const store = joined();
    store.apply({ event: "file-offered", file: "f2", to: "p1", name: "big.iso", size: 10_000_000 });
    store.apply({ event: "file-progress", file: "f2", peer: "p1", bytes: 0, size: 10_000_000 }, 1_000);
    expect(secondsLeft(store.state.transfers.get("f2")!)).toBeUndefined();
    store.apply({ event: "file-progress", file: "f2", peer: "p1", bytes: 1_000_000, size: 10_000_000 }, 1_250);
    const transfer = store.state.transfers.get("f2")!;
    expect(transfer.rate).toBe(4_000_000);
    expect(secondsLeft(transfer)).toBeCloseTo(2.25);
    // A slower reading moves the estimate, smoothed rather than all at once.
    store.apply({ event: "file-progress", file: "f2", peer: "p1", bytes: 1_500_000, size: 10_000_000 }, 1_500);
    expect(transfer.rate).toBeCloseTo(3_400_000);
  });

  it("puts errors where they happen, in plain words", () => {
    const store = joined();
    expect(errorArea("server-unreachable")).toBe("connection");
    expect(errorArea("audio-in")).toBe("audio");
    expect(plainError("bad-password", "x")).toBe("Wrong password for this room.");
    store.apply({ event: "error", code: "room-full", message: "full" });
    store.apply({ event: "error", code: "server-unreachable", message: "refused" });
    const shown = store.errorsIn("connection");
    expect(shown).toHaveLength(1);
    expect(shown[0]?.message).toMatch(/Can't reach the signaling server/);
    store.apply({ event: "signaling", state: "connected", id: "me", room: "lobby" });
    expect(store.errorsIn("connection")).toHaveLength(0);
  });

  it("keeps at most the log limit and clears on demand", () => {
    const store = joined();
    for (let i = 0; i < 5010; i++) store.apply({ event: "log", level: "info", msg: `line ${i}`, ts: i });
    expect(store.state.logs).toHaveLength(5000);
    expect(store.state.logs[0]?.msg).toBe("line 10");
    store.clearLogs();
    expect(store.state.logs).toHaveLength(0);
  });
});
