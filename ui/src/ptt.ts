// Push-to-talk: with it switched on in Settings, the microphone stays muted in a call
// except while Space is held in the window (not while typing in a field), or the
// desktop-wide talk shortcut anywhere (whose presses the app itself applies).

import type { Actions } from "./actions";
import type { Store } from "./store";

/** The key held to talk: Space, which types nothing outside text fields. */
export const TALK_KEY = " ";

/** Which key holds the microphone open. */
type Holder = "space" | "shortcut";

export class PushToTalk {
  private held: Holder | null = null;

  constructor(
    private readonly store: Store,
    private readonly actions: Actions,
    target: Window,
  ) {
    target.addEventListener("keydown", (e) => this.keyDown(e));
    target.addEventListener("keyup", (e) => this.keyUp(e));
    // Space released while the window was not focused never sends its keyup. The desktop
    // shortcut is held outside the window: its release comes from the desktop.
    target.addEventListener("blur", () => this.release("space"));
  }

  private active(): boolean {
    return this.store.state.settings.push_to_talk && this.store.callRoom() !== null;
  }

  /** The desktop-wide talk shortcut went down (`held`) or up. The app has already opened
   * or muted the microphone (straight, not through this page, which can be slow to hear of
   * it): this only keeps Space from closing what the shortcut holds open. */
  shortcut(held: boolean): void {
    if (held && !this.held && this.active()) this.held = "shortcut";
    else if (!held && this.held === "shortcut") this.held = null;
    // Released while Space holds the microphone open: the app muted it, Space wants it open.
    else if (!held && this.held === "space" && this.active()) void this.actions.setMuted(false);
  }

  private keyDown(e: KeyboardEvent): void {
    if (e.key !== TALK_KEY || e.repeat || !this.active() || typing(e.target)) return;
    e.preventDefault();
    this.press("space");
  }

  private keyUp(e: KeyboardEvent): void {
    if (e.key === TALK_KEY) this.release("space");
  }

  private press(by: Holder): void {
    if (this.held || !this.active()) return;
    this.held = by;
    void this.actions.setMuted(false);
  }

  /** The microphone closes when the key that opened it comes up. */
  private release(by: Holder): void {
    if (this.held !== by) return;
    this.held = null;
    if (this.active()) void this.actions.setMuted(true);
  }
}

/** A field that takes the key as text, or a control it presses. */
function typing(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT", "BUTTON"].includes(target.tagName);
}
