// Push-to-talk: with it switched on in Settings, the microphone stays muted in a call
// except while Space is held in the window (not while typing in a field).

import type { Actions } from "./actions";
import type { Store } from "./store";

/** The key held to talk: Space, which types nothing outside text fields. */
export const TALK_KEY = " ";

export class PushToTalk {
  private held = false;

  constructor(
    private readonly store: Store,
    private readonly actions: Actions,
    target: Window,
  ) {
    target.addEventListener("keydown", (e) => this.keyDown(e));
    target.addEventListener("keyup", (e) => this.keyUp(e));
    // A key released while the window was not focused never sends its keyup.
    target.addEventListener("blur", () => this.release());
  }

  private active(): boolean {
    return this.store.state.settings.push_to_talk && this.store.state.call.phase !== "idle";
  }

  private keyDown(e: KeyboardEvent): void {
    if (e.key !== TALK_KEY || e.repeat || this.held || !this.active() || typing(e.target)) return;
    e.preventDefault();
    this.held = true;
    void this.actions.setMuted(false);
  }

  private keyUp(e: KeyboardEvent): void {
    if (e.key === TALK_KEY) this.release();
  }

  private release(): void {
    if (!this.held) return;
    this.held = false;
    if (this.active()) void this.actions.setMuted(true);
  }
}

/** A field that takes the key as text, or a control it presses. */
function typing(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT", "BUTTON"].includes(target.tagName);
}
