// The left column: the rooms the app is in (each with its unread count), the people of the
// room on screen with their states and badges, and the way to the settings and logs.

import type { Actions } from "../actions";
import { h, refill } from "../dom";
import { icon } from "../icons";
import type { Peer, Store } from "../store";
import { ROOM, contactConversation } from "../store";
import type { Contact, RoomSettings } from "../types";
import { formatLastSeen } from "../format";
import { avatar, peerStateText, rttText } from "./common";

export class Sidebar {
  readonly el = h("aside", { class: "sidebar", "aria-label": "Conversations" });
  private drawn = "";

  constructor(
    private readonly store: Store,
    private readonly actions: Actions,
  ) {}

  update(): void {
    const s = this.store;
    const key = ["peers", "chat", "connection", "view", "call", "settings"].map((p) => s.rev(p as never)).join();
    if (key === this.drawn) return;
    this.drawn = key;
    const state = s.state;
    const peers = [...state.peers.values()].sort((a, b) => a.name.localeCompare(b.name));
    // Those met before who are not here: in another of the app's rooms, or away.
    const notHere = s.awayContacts().map((contact) => ({ contact, at: s.presentElsewhere(contact.key) }));
    const elsewhere = notHere.filter((c) => c.at !== null);
    const away = notHere.filter((c) => c.at === null).map((c) => c.contact);
    refill(
      this.el,
      h(
        "header",
        { class: "brand" },
        h("span", { class: "logo" }, icon("chat")),
        h("span", { class: "title" }, "Confab"),
        h("span", { class: `dot ${dotClass(state.signaling)}`, title: `Signaling: ${state.signaling}` }),
      ),
      h(
        "nav",
        { class: "rooms", "aria-label": "Rooms" },
        h("h2", {}, "Rooms"),
        h("ul", { class: "room-list" }, state.settings.rooms.map((r) => this.roomRow(r))),
        h(
          "button",
          { class: "link join-room", type: "button", "data-action": "join-room", onclick: () => s.setView("settings") },
          "+ Join a room",
        ),
      ),
      h(
        "section",
        { class: "peers" },
        h("h2", {}, `People here (${peers.length})`),
        peers.length
          ? h("ul", { class: "peer-list" }, peers.map((p) => this.peerRow(p)))
          : h("p", { class: "hint" }, state.signaling === "connected" ? "Nobody else is in this room yet." : "Not in a room."),
      ),
      elsewhere.length
        ? h(
            "section",
            { class: "peers elsewhere" },
            h("h2", {}, `In your other rooms (${elsewhere.length})`),
            h("ul", { class: "peer-list" }, elsewhere.map(({ contact, at }) => (at ? this.elsewhereRow(contact, at) : null))),
          )
        : null,
      away.length
        ? h(
            "section",
            { class: "peers away" },
            h("h2", {}, `Away (${away.length})`),
            h("ul", { class: "peer-list" }, away.map((c) => this.contactRow(c))),
          )
        : null,
      h(
        "footer",
        { class: "me" },
        avatar(state.settings.name, true),
        h("span", { class: "name", title: "Your display name" }, state.settings.name),
        h(
          "button",
          { class: `icon ${state.view === "logs" ? "active" : ""}`, type: "button", title: "Logs", "aria-label": "Logs", "data-nav": "logs", onclick: () => s.setView("logs") },
          icon("list"),
        ),
        h(
          "button",
          { class: `icon ${state.view === "settings" ? "active" : ""}`, type: "button", title: "Settings", "aria-label": "Settings", "data-nav": "settings", onclick: () => s.setView("settings") },
          icon("gear"),
        ),
      ),
    );
  }

  /** A room the app is in. The one on screen opens its conversation; another is shown, at
   * the conversation it was left on. Its count is of everything unread in it. */
  private roomRow(joined: RoomSettings): HTMLElement {
    const s = this.store;
    const state = s.state;
    const here = joined.id === state.current;
    const room = state.rooms.get(joined.id);
    const unread = here ? s.conversation(ROOM).unread : s.roomUnread(joined.id);
    const inCall = room !== undefined && room.call.phase !== "idle";
    const signaling = room?.signaling ?? "idle";
    const name = s.roomName(joined.id);
    return h(
      "li",
      { "data-room": joined.id, "data-room-name": name },
      h(
        "button",
        {
          class: `conv ${here && state.active === ROOM && state.view === "chat" ? "active" : ""} ${here ? "here" : ""}`,
          type: "button",
          "aria-current": here ? "true" : undefined,
          "aria-label": `${name}${unread ? `, ${unread} unread` : ""}${inCall ? ", in a call" : ""}`,
          title: joined.server,
          ...(here ? { "data-conv": ROOM } : {}),
          onclick: () => (here ? this.actions.openConversation(ROOM) : s.switchRoom(joined.id)),
        },
        h("span", { class: "hash", "aria-hidden": "true" }, "#"),
        h("span", { class: "name" }, name),
        inCall ? h("span", { class: "room-call", title: "Call under way" }, icon("phone")) : null,
        h("span", { class: `dot ${dotClass(signaling)}`, title: `Signaling: ${signaling}` }),
        unreadBadge(unread),
      ),
    );
  }

  /** A contact who is in another of the app's rooms: a click shows that room, with the
   * conversation with them open. */
  private elsewhereRow(contact: Contact, at: { room: string; peer: string }): HTMLElement {
    const room = this.store.roomName(at.room);
    return h(
      "li",
      { "data-contact": contact.key, "data-elsewhere": at.room, "data-name": contact.name },
      h(
        "button",
        {
          class: "conv peer",
          type: "button",
          onclick: () => {
            this.store.switchRoom(at.room);
            this.actions.openConversation(at.peer);
          },
        },
        avatar(contact.name),
        h("span", { class: "who" }, h("span", { class: "name" }, contact.name), h("span", { class: "state st-connected" }, `in # ${room}`)),
      ),
    );
  }

  /** A contact who is not here: its past conversation opens, and what is written waits. */
  private contactRow(contact: Contact): HTMLElement {
    const state = this.store.state;
    const key = contactConversation(contact.key);
    const conversation = state.conversations.get(key);
    const active = state.active === key && state.view === "chat";
    return h(
      "li",
      { "data-contact": contact.key, "data-name": contact.name },
      h(
        "button",
        {
          class: `conv peer ${active ? "active" : ""}`,
          type: "button",
          "data-conv": key,
          title: contact.earlier_names?.length ? `Also known as ${contact.earlier_names.join(", ")}` : contact.name,
          onclick: () => this.actions.openConversation(key),
        },
        avatar(contact.name),
        h(
          "span",
          { class: "who" },
          h("span", { class: "name" }, contact.name),
          h("span", { class: "state st-away" }, `away · ${formatLastSeen(contact.last_seen)}`),
          h("span", { class: "badges" }, contact.verified ? h("span", { class: "badge verified", title: "Verified" }, "✓ verified") : null),
        ),
        unreadBadge(conversation?.unread ?? 0),
      ),
    );
  }

  private peerRow(peer: Peer): HTMLElement {
    const state = this.store.state;
    const conversation = state.conversations.get(peer.id);
    const active = state.active === peer.id && state.view === "chat";
    const badges = [
      peer.callState === "active" ? h("span", { class: "badge call", title: "In the call" }, "in call") : null,
      peer.callState === "ringing" ? h("span", { class: "badge call", title: "Ringing" }, "ringing") : null,
      peer.muted ? h("span", { class: "badge muted", title: "Muted" }, "muted") : null,
      peer.trust === "verified" ? h("span", { class: "badge verified", title: "Verified" }, "✓ verified") : null,
      peer.trust === "changed" ? h("span", { class: "badge changed", title: "Known with another key before: compare safety codes" }, "⚠ key changed") : null,
    ];
    return h(
      "li",
      { "data-peer": peer.id, "data-name": peer.name, "data-state": peer.state },
      h(
        "button",
        {
          class: `conv peer ${active ? "active" : ""}`,
          type: "button",
          "data-conv": peer.id,
          title: rttText(peer),
          onclick: () => this.actions.openConversation(peer.id),
        },
        avatar(peer.name),
        h(
          "span",
          { class: "who" },
          h("span", { class: "name" }, peer.name),
          h("span", { class: `state st-${peer.state}` }, peerStateText(peer)),
          h("span", { class: "badges" }, badges),
        ),
        unreadBadge(conversation?.unread ?? 0),
      ),
    );
  }
}

function unreadBadge(count: number): HTMLElement | null {
  return count > 0 ? h("span", { class: "unread", "aria-label": `${count} unread` }, String(count)) : null;
}

function dotClass(state: string): string {
  if (state === "connected") return "ok";
  if (state === "connecting" || state === "reconnecting") return "busy";
  return "off";
}
