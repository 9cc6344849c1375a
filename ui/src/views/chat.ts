// A conversation: the room's or one peer's. Messages with times, own ones marked, delivery
// ticks; file transfers with that peer; the composer (Enter sends, Shift+Enter breaks).

import type { Actions } from "../actions";
import { fill, h, refill } from "../dom";
import { icon } from "../icons";
import { browserLink, formatBytes, formatLastSeen, formatRate, formatTimeLeft, formatTime, inviteLink, linkHref, splitLinks } from "../format";
import type { Message, Peer, Store, Transfer } from "../store";
import { ROOM, contactKey, secondsLeft } from "../store";
import { avatar, copyButton, errorList, peerStateText } from "./common";

export class ChatView {
  readonly el = h("section", { class: "chat", "aria-label": "Conversation" });
  private readonly header = h("header", { class: "chat-header" });
  private readonly list = h("ol", { class: "messages", "aria-live": "polite", "aria-label": "Messages" });
  private readonly files = h("div", { class: "transfers" });
  private readonly errors = h("div", { class: "chat-errors" });
  private readonly input = h("textarea", {
    class: "composer-input",
    rows: 1,
    placeholder: "Write a message…",
    "aria-label": "Message",
  });
  private readonly fileForm = h("form", { class: "file-form", hidden: true });
  /** The room's invite: its links and QR code, shown from the header's Invite button. */
  private readonly invitePanel = h("section", { class: "invite", hidden: true, "aria-label": "Invite to this room" });
  private drawn = "";

  constructor(
    private readonly store: Store,
    private readonly actions: Actions,
  ) {
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => this.grow());
    const send = h("button", { class: "primary", type: "submit", "aria-label": "Send" }, "Send");
    const composer = h(
      "form",
      { class: "composer", onsubmit: (e: Event) => (e.preventDefault(), this.submit()) },
      this.input,
      send,
    );
    this.buildFileForm();
    this.el.append(this.header, this.invitePanel, this.list, this.files, this.errors, this.fileForm, composer);
  }

  focus(): void {
    this.input.focus();
  }

  private submit(): void {
    const text = this.input.value;
    if (!text.trim()) return;
    this.input.value = "";
    this.grow();
    const to = this.store.state.active === ROOM ? null : this.store.state.active;
    void this.actions.chat(text, to);
  }

  /** The box grows with its text up to a few lines, then scrolls. */
  private grow(): void {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 160)}px`;
  }

  private buildFileForm(): void {
    const path = h("input", { type: "text", placeholder: "/home/me/Documents/report.pdf", "aria-label": "Path of the file to send" });
    fill(
      this.fileForm,
      h("button", { class: "primary", type: "button", onclick: () => this.choose() }, "Choose a file…"),
      h("label", {}, "or its path: ", path),
      h("button", { type: "submit" }, "Send file"),
      h("button", { type: "button", onclick: () => (this.fileForm.hidden = true) }, "Cancel"),
    );
    this.fileForm.addEventListener("submit", (e) => {
      e.preventDefault();
      const to = this.store.state.active;
      if (to === ROOM || !path.value.trim()) return;
      void this.actions.sendFile(to, path.value);
      path.value = "";
      this.fileForm.hidden = true;
    });
  }

  /** The desktop's file chooser; the file picked goes at once. */
  private choose(): void {
    const to = this.store.state.active;
    if (to === ROOM) return;
    this.fileForm.hidden = true;
    void this.actions.chooseAndSendFile(to);
  }

  update(): void {
    const s = this.store;
    const key = ["chat", "peers", "files", "errors", "call", "connection"].map((p) => s.rev(p as never)).join() + s.state.active;
    if (key === this.drawn) return;
    const switched = !this.drawn.endsWith(s.state.active);
    this.drawn = key;
    this.drawHeader();
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    const conversation = s.conversation(s.state.active);
    const messages = conversation.messages;
    fill(
      this.list,
      messages.length
        ? messages.map((m, i) => this.message(m, messages[i - 1]))
        : h("li", { class: "empty" }, s.state.active === ROOM ? "No messages in this room yet. Say hello!" : "No messages yet."),
    );
    if (atBottom || switched) this.list.scrollTop = this.list.scrollHeight;
    const transfers = [...s.state.transfers.values()].filter((t) => t.peer === s.state.active);
    fill(this.files, transfers.map((t) => this.transfer(t)));
    const peer = s.state.peers.get(s.state.active);
    const trustWarning =
      peer?.trust === "changed"
        ? h(
            "p",
            { class: "error trust-warning", role: "alert" },
            `⚠ ${peer.name} was known with another key before: this may not be ${peer.name}. Compare safety codes (Verify) before you trust this conversation.`,
          )
        : null;
    fill(this.errors, trustWarning, errorList(s, "chat"), errorList(s, "files"));
  }

  private drawHeader(): void {
    const s = this.store.state;
    const inCall = s.call.phase !== "idle";
    if (s.active === ROOM) {
      refill(
        this.header,
        h("span", { class: "hash big", "aria-hidden": "true" }, "#"),
        h("div", { class: "who" }, h("h1", {}, this.store.roomName(s.current)), h("span", { class: "sub" }, `${s.peers.size + 1} in the room`)),
        h("button", { type: "button", "data-action": "invite", "aria-expanded": String(!this.invitePanel.hidden), onclick: () => void this.toggleInvite() }, "Invite"),
        inCall
          ? h(
              "button",
              { type: "button", "data-action": "add-everyone", disabled: this.store.outsideCall().length === 0, onclick: () => void this.actions.addToCall(null) },
              icon("phone"), "Add everyone to the call",
            )
          : h(
              "button",
              { type: "button", "data-action": "call-room", disabled: s.peers.size === 0, onclick: () => void this.actions.call(null) },
              icon("phone"), "Call everyone",
            ),
      );
      return;
    }
    this.invitePanel.hidden = true;
    const peer = s.peers.get(s.active);
    const name = peer?.name ?? this.store.peerName(s.active);
    const away = contactKey(s.active);
    const contact = away === null ? undefined : s.contacts.get(away);
    const sub = peer
      ? peerStateText(peer)
      : contact
        ? `away · ${formatLastSeen(contact.last_seen)}; what you write waits for them`
        : "left the room";
    refill(
      this.header,
      avatar(name),
      h("div", { class: "who" }, h("h1", {}, name), h("span", { class: "sub" }, sub)),
      this.callButton(peer, inCall),
      h("button", { type: "button", "data-action": "send-file", disabled: !peer, onclick: () => ((this.fileForm.hidden = false), this.fileForm.querySelector("input")?.focus()) }, icon("clip"), "File"),
      h("button", { type: "button", "data-action": "verify", disabled: !peer, onclick: () => void this.actions.showSafetyCode(s.active) }, icon("shield"), peer?.trust === "verified" ? "Verified" : "Verify"),
    );
  }

  /** Call a peer; in a call, add it (or say it is in already). */
  private callButton(peer: Peer | undefined, inCall: boolean): HTMLElement {
    const active = this.store.state.active;
    if (!inCall) {
      return h("button", { type: "button", "data-action": "call-peer", disabled: !peer, onclick: () => void this.actions.call(active) }, icon("phone"), "Call");
    }
    const joined = peer?.callState === "active" || peer?.callState === "ringing";
    return h(
      "button",
      { type: "button", "data-action": "add-to-call", disabled: !peer || joined || peer.state !== "connected", onclick: () => void this.actions.addToCall(active) },
      icon("phone"),
      joined ? "In the call" : "Add to call",
    );
  }

  private async toggleInvite(): Promise<void> {
    if (!this.invitePanel.hidden) {
      this.invitePanel.hidden = true;
      this.drawHeader();
      return;
    }
    const made = await this.actions.invite();
    if (!made) return;
    const link = inviteLink(made.invite);
    const page = browserLink(made.invite);
    const copyable = (label: string, text: string, field: string) =>
      h(
        "div",
        { class: "copyable" },
        h("label", {}, h("span", { class: "label" }, label), h("input", { type: "text", readonly: true, value: text, "data-field": field })),
        copyButton(this.actions, text, label.toLowerCase()),
      );
    fill(
      this.invitePanel,
      h("p", { class: "sub" }, "Others open this link in Confab, or paste it on its first screen. The room's password, if it has one, is asked, never put in the link."),
      copyable("Invite link", link, "invite-link"),
      page ? copyable("For a browser", page, "browser-link") : null,
      made.qr ? h("img", { class: "qr", alt: "QR code of the invite link", src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(made.qr)}` }) : null,
    );
    this.invitePanel.hidden = false;
    this.drawHeader();
  }

  private message(m: Message, previous: Message | undefined): HTMLElement {
    const writer = (x: Message) => x.authorKey ?? x.from;
    const grouped = previous && writer(previous) === writer(m) && previous.own === m.own && m.ts - previous.ts < 120_000;
    return h(
      "li",
      { class: `msg ${m.own ? "own" : "theirs"} ${grouped ? "grouped" : ""}`, "data-id": m.id, "data-delivery": m.delivery },
      !m.own && !grouped ? avatar(m.name, true) : h("span", { class: "avatar-space" }),
      h(
        "div",
        { class: "bubble" },
        !grouped ? h("div", { class: "meta" }, h("span", { class: "author" }, m.own ? "You" : m.name)) : null,
        h("div", { class: "text" }, this.textWithLinks(m.text)),
        h(
          "div",
          { class: "foot" },
          h("time", { datetime: new Date(m.ts).toISOString(), title: new Date(m.ts).toLocaleString() }, formatTime(m.ts)),
          m.fromHistory
            ? h("span", { class: "from-history", title: `Said before you came; passed on by ${this.store.peerName(m.from)}` }, "earlier")
            : null,
          m.own ? ticks(m) : null,
        ),
      ),
    );
  }

  private textWithLinks(text: string): (Node | string)[] {
    return splitLinks(text).map((part) => {
      if ("text" in part) return part.text;
      const href = linkHref(part.link);
      return h(
        "a",
        { href, rel: "noopener noreferrer", onclick: (e: Event) => (e.preventDefault(), this.actions.openLink(href)) },
        part.link,
      );
    });
  }

  private transfer(t: Transfer): HTMLElement {
    const percent = t.size ? Math.round((t.bytes / t.size) * 100) : 0;
    const status: Record<Transfer["status"], string> = {
      offered: "waiting for them to accept",
      incoming: "wants to send you this file",
      moving: [`${formatBytes(t.bytes)} of ${formatBytes(t.size)}`, ...progressRate(t)].join(" · "),
      done: t.path ? `saved to ${t.path}` : "delivered and checked",
      failed: "failed: the file did not arrive intact",
      rejected: "declined",
    };
    return h(
      "div",
      { class: `transfer ${t.status}`, "data-file": t.file },
      h("span", { class: "file-icon" }, icon("file")),
      h(
        "div",
        { class: "file-info" },
        h("strong", {}, t.name),
        h("span", { class: "sub" }, `${formatBytes(t.size)} · ${status[t.status]}`),
        t.status === "moving" ? h("progress", { max: 100, value: percent, "aria-label": `${t.name} progress` }) : null,
      ),
      t.status === "incoming"
        ? [
            h("button", { class: "primary", type: "button", onclick: () => void this.actions.acceptFile(t.file) }, "Accept"),
            h("button", { type: "button", onclick: () => void this.actions.rejectFile(t.file) }, "Decline"),
          ]
        : null,
      t.status === "offered" || t.status === "moving"
        ? h("button", { type: "button", onclick: () => void this.actions.rejectFile(t.file) }, "Cancel")
        : null,
    );
  }
}

/** Throughput and time left, once there are readings for them. */
function progressRate(t: Transfer): string[] {
  const left = secondsLeft(t);
  if (t.rate === undefined || left === undefined) return [];
  return [formatRate(t.rate), formatTimeLeft(left)];
}

/** ⏱ waiting for a channel, ✓ sent, ✓✓ delivered (acknowledged by everyone it went to). */
function ticks(m: Message): HTMLElement {
  const words: Record<string, [string, string]> = {
    pending: ["…", "Waiting for a connection to send it"],
    sent: ["✓", "Sent"],
    delivered: ["✓✓", "Delivered"],
    received: ["", ""],
  };
  const [mark, title] = words[m.delivery] ?? ["", ""];
  return h("span", { class: `ticks ${m.delivery}`, title, "aria-label": title }, mark);
}
