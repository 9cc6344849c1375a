// First run: a display name, a room, and either a server to connect to or one to host.

import type { Actions } from "../actions";
import { fill, h } from "../dom";
import { parseInvite, serverProblem } from "../format";
import type { Store } from "../store";
import type { FoundServer } from "../types";
import { errorList, foundServers } from "./common";

export class Onboarding {
  readonly el = h("section", { class: "onboarding", "aria-label": "Welcome" });
  private readonly name = h("input", { type: "text", maxlength: 64, required: true, "data-field": "name", autocomplete: "nickname" });
  private readonly room = h("input", { type: "text", maxlength: 64, required: true, "data-field": "room" });
  private readonly host = h("input", { type: "radio", name: "mode", value: "host", "data-field": "mode-host" });
  private readonly join = h("input", { type: "radio", name: "mode", value: "join", "data-field": "mode-join" });
  private readonly server = h("input", { type: "text", "data-field": "server", placeholder: "ws://192.168.1.20:8787/ws, or paste an invite" });
  private readonly errors = h("div", { role: "alert" });
  private readonly found = h("div", {});
  private drawnFound = -1;
  private filled = false;
  private drawn = -1;

  constructor(
    private readonly store: Store,
    private readonly actions: Actions,
  ) {
    const toggle = () => (this.server.disabled = this.host.checked);
    this.host.addEventListener("change", toggle);
    this.join.addEventListener("change", toggle);
    // An invite pasted here (or a server page's link) fills in its server and room.
    this.server.addEventListener("input", () => {
      const invite = parseInvite(this.server.value);
      if (!invite) return;
      this.server.value = invite.server;
      this.room.value = invite.room;
    });
    fill(
      this.el,
      h(
        "form",
        { class: "card", onsubmit: (e: Event) => (e.preventDefault(), void this.start()) },
        h("h1", {}, "Welcome to Confab"),
        h("p", { class: "sub" }, "Chat, files and calls that go straight from computer to computer."),
        h("label", { class: "field" }, h("span", { class: "label" }, "Your name"), this.name),
        h("label", { class: "field" }, h("span", { class: "label" }, "Room"), this.room),
        h(
          "fieldset",
          {},
          h("legend", {}, "Server"),
          h("label", { class: "choice" }, this.host, h("span", {}, "Host one here (others on your network join you)")),
          h("label", { class: "choice" }, this.join, h("span", {}, "Connect to a server"), this.server),
          this.found,
        ),
        this.errors,
        h("button", { class: "primary big", type: "submit", "data-action": "start" }, "Start chatting"),
      ),
    );
  }

  update(): void {
    const s = this.store;
    if (!this.filled) {
      const settings = s.state.settings;
      this.name.value = settings.name;
      this.room.value = settings.rooms[0]?.room ?? "lobby";
      this.server.value = settings.rooms[0]?.server ?? "";
      this.host.checked = settings.host.enabled;
      this.join.checked = !settings.host.enabled;
      this.server.disabled = settings.host.enabled;
      this.filled = true;
      if (s.state.found === null) void this.actions.discover();
    }
    // An invite the app was opened with fills in its server and room.
    const invite = s.state.invite;
    if (invite) {
      this.joinServer(invite.server);
      this.room.value = invite.room;
      s.clearInvite();
    }
    if (s.rev("settings") !== this.drawnFound) {
      this.drawnFound = s.rev("settings");
      fill(this.found, foundServers(s, this.actions, (server) => void this.joinFound(server)));
    }
    if (s.rev("errors") !== this.drawn) {
      this.drawn = s.rev("errors");
      fill(this.errors, errorList(s, "settings"), errorList(s, "host"), errorList(s, "connection"));
    }
  }

  focus(): void {
    this.name.focus();
  }

  /** One click on a server found: join it, in its busiest room unless one was typed. */
  private async joinFound(server: FoundServer): Promise<void> {
    this.joinServer(server.url);
    const busiest = server.rooms[0];
    if (busiest && (!this.room.value.trim() || this.room.value === this.store.state.settings.rooms[0]?.room)) {
      this.room.value = busiest.room;
    }
    await this.start();
  }

  /** "Connect to a server" chosen, with this one filled in. */
  private joinServer(url: string): void {
    this.join.checked = true;
    this.server.disabled = false;
    this.server.value = url;
  }

  private async start(): Promise<void> {
    const name = this.name.value.trim();
    const room = this.room.value.trim();
    if (!name || !room) {
      this.store.showError({ area: "settings", code: "invalid", message: "Pick a name and a room." });
      return;
    }
    const hosting = this.host.checked;
    if (!hosting) {
      const problem = serverProblem(this.server.value);
      if (problem) {
        this.store.showError({ area: "settings", code: "invalid", message: problem });
        return;
      }
    }
    const current = this.store.state.settings;
    // The first run sets up one room; more are joined from Settings or by invites.
    const first = { id: current.rooms[0]?.id ?? "r1", server: this.server.value.trim(), room, password: current.rooms[0]?.password ?? "" };
    if (!(await this.actions.saveSettings({ ...current, name, host: { ...current.host, enabled: hosting } }))) return;
    if (hosting) {
      if (!(await this.actions.hostStart())) return;
      first.server = this.store.state.host.local_url ?? first.server;
    } else if (this.store.state.host.running) {
      await this.actions.hostStop();
    }
    if (!(await this.actions.saveSettings({ ...this.store.state.settings, rooms: [first], onboarded: true }))) return;
    this.store.switchRoom(first.id);
    await this.actions.connect(first.id);
  }
}
