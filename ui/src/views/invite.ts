// An invite link opened with the app, once past the first run: join its room, with the
// room's password if it has one (a link never carries it), or not.

import type { Actions } from "../actions";
import { fill, h } from "../dom";
import type { Store } from "../store";

export class InvitePrompt {
  readonly el = h("div", { class: "incoming invite-prompt", role: "alertdialog", "aria-modal": "true", "aria-labelledby": "invite-title", hidden: true });
  private drawn = -1;

  constructor(
    private readonly store: Store,
    private readonly actions: Actions,
  ) {
    this.el.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.store.clearInvite();
    });
  }

  update(): void {
    const s = this.store;
    if (s.rev("invite") === this.drawn) return;
    this.drawn = s.rev("invite");
    const invite = s.state.view === "onboarding" ? null : s.state.invite;
    this.el.hidden = !invite;
    if (!invite) return;
    const password = h("input", { type: "password", "data-field": "invite-password", autocomplete: "off" });
    const join = h("button", { class: "primary", type: "submit", "data-action": "join-invite" }, "Join");
    fill(
      this.el,
      h(
        "form",
        {
          class: "incoming-card invite-card",
          onsubmit: (e: Event) => (e.preventDefault(), void this.actions.joinInvite(invite, password.value)),
        },
        h(
          "div",
          {},
          h("h2", { id: "invite-title" }, `Join the room “${invite.room}”?`),
          h("p", { class: "sub" }, `on ${invite.server}`),
          h("label", { class: "field" }, h("span", { class: "label" }, "Password, if the room has one"), password),
        ),
        join,
        h("button", { type: "button", "data-action": "dismiss-invite", onclick: () => this.store.clearInvite() }, "Not now"),
      ),
    );
    join.focus();
  }
}
