// Voice: the incoming-call prompt, and the in-call bar (mute, hang up, meters, volumes).
// The app is in one call at a time; both show it whichever room is on screen.

import type { Actions } from "../actions";
import { fill, h, refill } from "../dom";
import { icon } from "../icons";
import type { Store } from "../store";
import { avatar, errorList, meter } from "./common";

export class IncomingCall {
  readonly el = h("div", { class: "incoming", role: "alertdialog", "aria-modal": "true", "aria-labelledby": "incoming-title", hidden: true });
  private drawn = "";

  constructor(
    private readonly store: Store,
    private readonly actions: Actions,
  ) {
    this.el.addEventListener("keydown", (e) => {
      if (e.key === "Escape") void this.actions.decline();
    });
  }

  update(): void {
    const ringing = this.store.ringing();
    const incoming = ringing?.incoming;
    const key = incoming ? `${incoming.call}:${this.store.rev("peers")}` : "";
    if (key === this.drawn) return;
    const wasHidden = this.el.hidden;
    this.drawn = key;
    this.el.hidden = !incoming;
    if (!ringing || !incoming) return;
    const room = this.store.state.roomState(ringing.room);
    const name = this.store.peerName(incoming.from, room);
    const where = ringing.room === this.store.state.current ? "" : ` in ${this.store.roomName(ringing.room)}`;
    const accept = h("button", { class: "primary accept", type: "button", "data-action": "accept-call", onclick: () => void this.actions.accept() }, "Accept");
    fill(
      this.el,
      h(
        "div",
        { class: "incoming-card" },
        avatar(name),
        h("div", {}, h("h2", { id: "incoming-title" }, `${name} is calling`), h("p", { class: "sub" }, `Voice call${where}${this.store.alsoInCall(incoming.members, room)}`)),
        accept,
        h("button", { class: "danger", type: "button", "data-action": "decline-call", onclick: () => void this.actions.decline() }, "Decline"),
      ),
    );
    if (wasHidden) accept.focus();
  }
}

export class CallBar {
  readonly el = h("section", { class: "callbar", "aria-label": "Call", hidden: true });
  private drawn = "";

  constructor(
    private readonly store: Store,
    private readonly actions: Actions,
  ) {}

  update(): void {
    const s = this.store;
    const room = s.callState();
    const call = room.call;
    const key = `${s.rev("call")}:${s.rev("peers")}:${s.rev("errors")}:${s.rev("settings")}:${s.state.current}`;
    if (key === this.drawn) return;
    this.drawn = key;
    const errors = errorList(s, "call");
    this.el.hidden = call.phase === "idle" && !errors;
    if (call.phase === "idle") {
      fill(this.el, errors);
      return;
    }
    const members = [...room.peers.values()].filter((p) => p.callState === "active" || p.callState === "ringing");
    const callRoom = s.callRoom();
    const where = callRoom !== null && callRoom !== s.state.current ? ` in ${s.roomName(callRoom)}` : "";
    const title =
      call.phase === "active"
        ? `In a call with ${members.filter((p) => p.callState === "active").map((p) => p.name).join(", ") || "…"}${where}`
        : `Calling…${where}`;
    refill(
      this.el,
      h(
        "div",
        { class: "call-main" },
        h("span", { class: `call-icon ${call.phase}` }, icon("phone")),
        h("strong", { class: "call-title", "data-phase": call.phase }, title),
        h("span", { class: "me-level" }, h("span", { class: "sub", "data-mic": "" }, micLabel(call.muted, s.state.settings.push_to_talk, s.state.talkShortcut)), meter("", "Your microphone level", room.levels.get(""))),
        h(
          "button",
          { type: "button", class: call.muted ? "toggled" : "", "aria-pressed": String(call.muted), "data-action": "mute", onclick: () => void this.actions.toggleMute() },
          call.muted ? [icon("micOff"), "Unmute"] : [icon("mic"), "Mute"],
        ),
        this.addPicker(),
        callRoom !== null && callRoom !== s.state.current
          ? h("button", { type: "button", "data-action": "show-call-room", onclick: () => s.switchRoom(callRoom) }, `Go to # ${s.roomName(callRoom)}`)
          : null,
        h("button", { class: "danger", type: "button", "data-action": "hangup", onclick: () => void this.actions.hangup() }, "Hang up"),
      ),
      h(
        "ul",
        { class: "call-peers" },
        members.map((p) =>
          h(
            "li",
            { "data-call-peer": p.id },
            avatar(p.name, true),
            h("span", { class: "name" }, p.name),
            h("span", { class: "sub" }, p.callState === "ringing" ? "ringing…" : p.muted ? "muted" : ""),
            meter(p.id, `${p.name}'s level`, room.levels.get(p.id)),
            h(
              "label",
              { class: "volume" },
              h("span", { class: "sub" }, "Volume"),
              h("input", {
                type: "range",
                min: 0,
                max: 200,
                step: 5,
                value: Math.round(p.volume * 100),
                "aria-label": `${p.name}'s volume`,
                onchange: (e: Event) => void this.actions.setVolume(p.id, Number((e.target as HTMLInputElement).value) / 100),
              }),
            ),
          ),
        ),
      ),
      errors,
    );
  }

  /** Someone to add to the call, from the connected peers not in it; none when all are. */
  private addPicker(): HTMLElement | null {
    const outside = this.store.outsideCall();
    if (outside.length === 0) return null;
    return h(
      "select",
      {
        class: "add-to-call",
        "aria-label": "Add someone to the call",
        onchange: (e: Event) => {
          const select = e.target as HTMLSelectElement;
          const peer = select.value;
          select.value = "";
          if (peer) void this.actions.addToCall(peer);
        },
      },
      h("option", { value: "" }, "Add to call…"),
      outside.map((p) => h("option", { value: p.id }, p.name)),
    );
  }
}

/** What the call bar says of our microphone. */
function micLabel(muted: boolean, pushToTalk: boolean, shortcut: string | null): string {
  if (pushToTalk) return muted ? `Hold Space${shortcut ? ` or ${shortcut}` : ""} to talk` : "Talking";
  return muted ? "Mic muted" : "Your mic";
}
