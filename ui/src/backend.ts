// The one interface the page talks to the app through. The Tauri shell implements it
// (backend-tauri.ts); tests and a plain browser use the in-memory one (backend-fake.ts).

import type { Boot, ConnectionFinding, FoundServer, HostState, PeerCommand, PeerEvent, Settings, ShellErrorCode } from "./types";

export interface Backend {
  /** Starts the core; its events go to `onEvent` with the id of their room (the
   * high-rate ones included), invite links opened while the app runs to `onInvite` (the
   * one it was opened with comes in the answer), and the desktop-wide talk shortcut's
   * presses (true) and releases (false) to `onTalkKey`. */
  attach(onEvent: (event: PeerEvent, room: string) => void, onInvite: (link: string) => void, onTalkKey?: (held: boolean) => void): Promise<Boot>;
  /** One command of the core API for the room with id `room`; with none, one not about a
   * room (devices, the microphone test; `set-audio` goes to every room). Rejects with a
   * ShellError. */
  send(command: PeerCommand, room?: string): Promise<void>;
  saveSettings(settings: Settings): Promise<Settings>;
  hostStart(): Promise<HostState>;
  hostStop(): Promise<HostState>;
  hostState(): Promise<HostState>;
  /** An invite link as a QR code: an SVG document. */
  inviteQr(link: string): Promise<string>;
  /** The servers announced on the local network (takes about 2 s). */
  discoverServers(): Promise<FoundServer[]>;
  /** What works from here towards `server` (with these STUN/TURN specs): about 10 s at most. */
  connectionTest(server: string, iceServers: string[]): Promise<ConnectionFinding[]>;
  /** A desktop notification, shown only while the window is not focused. */
  notify(title: string, body: string): Promise<void>;
  /** Opens a web link from a message in the desktop's browser. */
  openUrl(url: string): Promise<void>;
  /** Grabs the desktop-wide talk shortcut (push-to-talk on) or lets it go: the shortcut
   * while it is grabbed, null otherwise (also where the desktop does not allow one). */
  talkShortcut(enabled: boolean): Promise<string | null>;
  /** The desktop's file chooser: the path picked, or null when cancelled. */
  chooseFile(): Promise<string | null>;
}

/** The code of a shell error (`{code, message}`), or `shell` when it has none known. */
export function errorCode(error: unknown): ShellErrorCode | "shell" {
  const codes: readonly string[] = ["bad-command", "stopped", "identity", "settings", "host", "discovery", "folder", "unknown-room", "no-room"] satisfies ShellErrorCode[];
  if (error && typeof error === "object" && "code" in error) {
    const code = String((error as { code: unknown }).code);
    if (codes.includes(code)) return code as ShellErrorCode;
  }
  return "shell";
}

/** A plain-words message from whatever a backend call rejected with. */
export function errorText(error: unknown): string {
  if (typeof error === "string") return error;
  if (error && typeof error === "object" && "message" in error) {
    return String((error as { message: unknown }).message);
  }
  return String(error);
}
