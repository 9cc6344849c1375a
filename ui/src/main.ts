// Starts the page: picks the backend (the app's, or the in-memory one in a plain browser),
// wires the store to it and draws.

import { Actions } from "./actions";
import type { Backend } from "./backend";
import { errorText } from "./backend";
import { FakeBackend } from "./backend-fake";
import { TauriBackend, isTauri } from "./backend-tauri";
import { PushToTalk } from "./ptt";
import { Store } from "./store";
import "./styles.css";
import { AppView } from "./views/app";

async function main(): Promise<void> {
  const inApp = isTauri();
  const backend: Backend = inApp ? new TauriBackend() : new FakeBackend();
  const store = new Store();
  const actions = new Actions(store, backend);
  const view = new AppView(store, actions);
  document.body.replaceChildren(view.el);
  const pushToTalk = new PushToTalk(store, actions, window);

  store.notifier = (title, body) => void backend.notify(title, body).catch(() => undefined);
  store.focused = document.hasFocus();
  window.addEventListener("focus", () => store.setFocused(true));
  window.addEventListener("blur", () => store.setFocused(false));

  try {
    const boot = await backend.attach(
      (event, room) => {
        store.apply(event, Date.now(), room);
        if (event.event === "signaling" && event.state === "connected") void actions.joined(room);
        // Someone new met, or someone gone: the away list changes.
        if (event.event === "trust" || event.event === "peer-left") void actions.contacts(room);
        if (event.event === "trust") void actions.restoreVolume(event.peer, event.fingerprint, room);
      },
      (link) => store.offerInvite(link),
      (held) => pushToTalk.shortcut(held),
    );
    actions.downloads = boot.downloads ?? "";
    store.setSettings(boot.settings);
    store.setHost(boot.host);
    if (boot.host_error) store.showError({ area: "host", code: "host", message: boot.host_error });
    if (boot.invite) store.offerInvite(boot.invite);
    if (boot.settings.push_to_talk) void actions.grabTalkShortcut();
    if (boot.settings.onboarded) {
      store.switchRoom(boot.settings.rooms[0]?.id ?? "");
      await actions.connectAll();
    } else {
      store.setView("onboarding");
    }
  } catch (error) {
    store.showError({ area: "general", code: "start", message: `Confab could not start: ${errorText(error)}` });
    store.setView("chat");
  }
  // Hosted-server counts change as people come and go.
  setInterval(() => {
    if (store.state.host.running && store.state.view === "settings") void actions.refreshHost();
  }, 2000);
}

void main();
