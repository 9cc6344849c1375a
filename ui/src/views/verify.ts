// Comparing safety codes with a peer, and marking it verified.

import type { Actions } from "../actions";
import { fill, h } from "../dom";
import type { Store } from "../store";
import { avatar } from "./common";

export class VerifyView {
  readonly el = h("section", { class: "verify", "aria-label": "Verify" });
  private drawn = "";

  constructor(
    private readonly store: Store,
    private readonly actions: Actions,
  ) {}

  update(): void {
    const s = this.store.state;
    const key = `${s.verifying}:${this.store.rev("peers")}`;
    if (key === this.drawn) return;
    this.drawn = key;
    const peer = s.verifying ? s.peers.get(s.verifying) : undefined;
    if (!peer) {
      fill(this.el, h("p", {}, "That peer has left."), h("button", { type: "button", onclick: () => this.store.verify(null) }, "Back"));
      return;
    }
    const status =
      peer.trust === "verified"
        ? h("p", { class: "ok" }, `✓ You have verified ${peer.name}.`)
        : peer.trust === "changed"
          ? h("p", { class: "error" }, `⚠ ${peer.name}'s key changed since you verified it. Compare the code again before trusting this connection.`)
          : h("p", { class: "sub" }, `${peer.name} is not verified yet.`);
    fill(
      this.el,
      h("header", { class: "view-header" }, avatar(peer.name), h("h1", {}, `Verify ${peer.name}`)),
      h(
        "p",
        {},
        "Compare this code with the one on their screen, in person or on a call. If both match, nobody sits between you: the connection is direct and encrypted end to end.",
      ),
      h("div", { class: "safety-code", "aria-live": "polite" }, peer.safetyCode ?? "…"),
      status,
      h(
        "div",
        { class: "actions" },
        h("button", { class: "primary", type: "button", "data-action": "mark-verified", disabled: !peer.safetyCode || peer.trust === "verified", onclick: () => void this.actions.markVerified(peer.id) }, "The codes match: mark verified"),
        h("button", { type: "button", onclick: () => this.actions.openConversation(peer.id) }, "Back to the conversation"),
      ),
    );
  }
}
