// The window: sidebar on the left; on the right the connection banner, the call bar and
// the current view. Redraws once per frame at most, each part only when it changed.

import type { Actions } from "../actions";
import { fill, h } from "../dom";
import type { Store, View } from "../store";
import { CallBar, IncomingCall } from "./call";
import { ChatView } from "./chat";
import { errorList, updateMeters } from "./common";
import { InvitePrompt } from "./invite";
import { LogsView } from "./logs";
import { Onboarding } from "./onboarding";
import { SettingsView } from "./settings";
import { Sidebar } from "./sidebar";
import { VerifyView } from "./verify";

export class AppView {
  readonly el = h("div", { class: "app" });
  private readonly banner = h("div", { class: "banner", role: "status", "aria-live": "polite" });
  private readonly main = h("main", { class: "main" });
  private readonly sidebar: Sidebar;
  private readonly callBar: CallBar;
  private readonly incoming: IncomingCall;
  private readonly invite: InvitePrompt;
  private readonly views: Record<View, { el: HTMLElement; update(): void }>;
  private readonly chat: ChatView;
  private readonly settings: SettingsView;
  private readonly onboarding: Onboarding;
  private shownView: View | null = null;
  private drawnBanner = "";
  private drawnLevels = -1;

  constructor(
    private readonly store: Store,
    private readonly actions: Actions,
  ) {
    this.sidebar = new Sidebar(store, actions);
    this.callBar = new CallBar(store, actions);
    this.incoming = new IncomingCall(store, actions);
    this.invite = new InvitePrompt(store, actions);
    this.chat = new ChatView(store, actions);
    this.settings = new SettingsView(store, actions);
    this.onboarding = new Onboarding(store, actions);
    this.views = {
      chat: this.chat,
      settings: this.settings,
      logs: new LogsView(store),
      onboarding: this.onboarding,
      verify: new VerifyView(store, actions),
    };
    const content = h("div", { class: "content" });
    for (const view of Object.values(this.views)) {
      view.el.hidden = true;
      content.append(view.el);
    }
    fill(this.main, this.banner, this.callBar.el, content);
    fill(this.el, this.sidebar.el, this.main, this.incoming.el, this.invite.el);
    this.el.addEventListener("keydown", (e) => this.shortcut(e));
    store.subscribe(() => this.update());
  }

  update(): void {
    const s = this.store.state;
    const onboarding = s.view === "onboarding";
    this.el.classList.toggle("first-run", onboarding);
    if (this.shownView !== s.view) {
      if (this.shownView === "settings") this.settings.hidden();
      for (const [name, view] of Object.entries(this.views)) view.el.hidden = name !== s.view;
      this.shownView = s.view;
      if (s.view === "settings") this.settings.shown();
      if (s.view === "chat") queueMicrotask(() => this.chat.focus());
      if (onboarding) queueMicrotask(() => this.onboarding.focus());
    }
    if (!onboarding) this.sidebar.update();
    this.views[s.view].update();
    this.callBar.update();
    this.incoming.update();
    this.invite.update();
    this.drawBanner();
    if (this.store.rev("levels") !== this.drawnLevels) {
      this.drawnLevels = this.store.rev("levels");
      updateMeters(this.el, this.store);
    }
  }

  private drawBanner(): void {
    const s = this.store.state;
    const key = `${s.current}:${s.signaling}:${s.everConnected}:${this.store.rev("errors")}:${s.view}:${s.settings.rooms.length}`;
    if (key === this.drawnBanner) return;
    this.drawnBanner = key;
    if (s.view === "onboarding") {
      fill(this.banner);
      this.banner.hidden = true;
      return;
    }
    const connected = [...s.peers.values()].some((p) => p.state === "connected");
    let text: string | null = null;
    let kind = "info";
    let action: HTMLElement | null = null;
    switch (s.signaling) {
      case "idle":
        if (!s.settings.rooms.length) {
          text = "You are in no room.";
          action = h("button", { type: "button", "data-action": "join-room", onclick: () => this.store.setView("settings") }, "Join a room");
          break;
        }
        text = "Not connected.";
        action = h("button", { type: "button", "data-action": "connect", onclick: () => void this.actions.connect() }, "Connect");
        break;
      case "connecting":
        text = `Connecting to ${s.settings.rooms.find((r) => r.id === s.current)?.server ?? "the server"}…`;
        break;
      case "reconnecting":
        text = "Lost the signaling server; reconnecting… Chats and calls with connected peers carry on.";
        kind = "warn";
        break;
      case "disconnected":
        kind = "warn";
        text = s.everConnected
          ? `Disconnected from the signaling server.${connected ? " Chats and calls with connected peers carry on; nobody new can join until you reconnect." : ""}`
          : "Not connected.";
        action = h("button", { type: "button", "data-action": "reconnect", onclick: () => void this.actions.reconnect() }, "Reconnect");
        break;
      case "connected":
        break;
    }
    const errors = errorList(this.store, "connection") ?? errorList(this.store, "general");
    this.banner.hidden = !text && !errors;
    this.banner.className = `banner ${errors ? "error" : kind}`;
    fill(this.banner, text ? h("span", { "data-signaling": s.signaling }, text) : null, action, errors);
  }

  /** Escape leaves settings, logs and verify for the conversation. */
  private shortcut(e: KeyboardEvent): void {
    const view = this.store.state.view;
    if (e.key === "Escape" && (view === "settings" || view === "logs" || view === "verify")) {
      this.store.open(this.store.state.active);
    }
  }
}
