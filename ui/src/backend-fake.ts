// An in-memory backend: what the unit tests drive, and what a plain browser gets (`npm run
// dev`), so the views can be worked on without the app. It records commands and lets the
// caller push events; it answers the few commands the views wait on.

import type { Backend } from "./backend";
import type { Boot, ConnectionFinding, FoundServer, HostState, PeerCommand, PeerEvent, Settings } from "./types";
import { defaultSettings, stoppedHost } from "./types";

export class FakeBackend implements Backend {
  readonly sent: PeerCommand[] = [];
  /** The room each of `sent` went to (undefined: none in particular). */
  readonly sentTo: (string | undefined)[] = [];
  readonly opened: string[] = [];
  /** What the file chooser answers (null: the user cancels). */
  chosenFile: string | null = null;
  readonly notifications: { title: string; body: string }[] = [];
  settings: Settings;
  host: HostState = stoppedHost();
  /** What looking for servers on the network finds. */
  found: FoundServer[] = [];
  /** What the connection test finds, and what it was asked. */
  findings: ConnectionFinding[] = [];
  readonly tested: { server: string; iceServers: string[] }[] = [];
  private listener: ((event: PeerEvent, room: string) => void) | null = null;
  private inviteListener: ((link: string) => void) | null = null;
  /** The link the app is opened with. */
  invite: string | null = null;
  /** Whether this pretend desktop lets the app grab a global shortcut, and whether it has. */
  desktopShortcuts = true;
  talkShortcutGrabbed = false;
  private talkKeyListener: ((held: boolean) => void) | null = null;
  private nextId = 1;

  constructor(settings: Partial<Settings> = {}) {
    this.settings = { ...defaultSettings(), ...settings };
  }

  async attach(onEvent: (event: PeerEvent, room: string) => void, onInvite: (link: string) => void, onTalkKey?: (held: boolean) => void): Promise<Boot> {
    this.listener = onEvent;
    this.inviteListener = onInvite;
    this.talkKeyListener = onTalkKey ?? null;
    return { settings: this.settings, host: this.host, host_error: null, downloads: "/tmp", invite: this.invite };
  }

  /** The desktop-wide talk shortcut pressed (true) or released (false), as a desktop
   * that grabbed it for the app hands it over: the app opens or mutes the call's
   * microphone itself (its core, in `room`, says so), then tells the page. */
  pressTalkKey(held: boolean, room?: string): void {
    this.emit({ event: "muted", muted: !held }, room);
    this.talkKeyListener?.(held);
  }

  async talkShortcut(enabled: boolean): Promise<string | null> {
    this.talkShortcutGrabbed = enabled && this.desktopShortcuts;
    return this.talkShortcutGrabbed ? "Ctrl+Shift+Space" : null;
  }

  /** An invite link opened while the app runs, as the desktop hands it over. */
  openInvite(link: string): void {
    this.inviteListener?.(link);
  }

  /** Delivers an event as the core would, from the peer in `room` (the first room in
   * Settings unless named). */
  emit(event: PeerEvent, room: string = this.settings.rooms[0]?.id ?? ""): void {
    this.listener?.(event, room);
  }

  async inviteQr(link: string): Promise<string> {
    return `<svg xmlns="http://www.w3.org/2000/svg"><desc>${encodeURIComponent(link)}</desc></svg>`;
  }

  async discoverServers(): Promise<FoundServer[]> {
    return this.found;
  }

  async connectionTest(server: string, iceServers: string[]): Promise<ConnectionFinding[]> {
    this.tested.push({ server, iceServers });
    return this.findings;
  }

  async send(command: PeerCommand, room?: string): Promise<void> {
    this.sent.push(command);
    this.sentTo.push(room);
    if (command.cmd === "chat") {
      // The core answers every chat with chat-sent, in order, from the room's peer.
      queueMicrotask(() => this.emit({ event: "chat-sent", id: `m${this.nextId++}`, to: [] }, room));
    }
  }

  async saveSettings(settings: Settings): Promise<Settings> {
    this.settings = settings;
    return settings;
  }

  async hostStart(): Promise<HostState> {
    const port = this.settings.host.port;
    this.host = {
      running: true,
      port,
      urls: [`ws://192.0.2.10:${port}/ws`],
      local_url: `ws://127.0.0.1:${port}/ws`,
      connections: 0,
      peers: 0,
      rooms: 0,
    };
    this.settings = { ...this.settings, host: { ...this.settings.host, enabled: true } };
    return this.host;
  }

  async hostStop(): Promise<HostState> {
    this.host = stoppedHost();
    this.settings = { ...this.settings, host: { ...this.settings.host, enabled: false } };
    return this.host;
  }

  async hostState(): Promise<HostState> {
    return this.host;
  }

  async notify(title: string, body: string): Promise<void> {
    this.notifications.push({ title, body });
  }

  async openUrl(url: string): Promise<void> {
    this.opened.push(url);
  }

  async chooseFile(): Promise<string | null> {
    return this.chosenFile;
  }
}
