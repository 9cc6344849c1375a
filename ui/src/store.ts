// The page's one store: state that changes only by applying core events (and a few user
// actions), with one revision counter per part so each view redraws only what changed.

import type {
  AnyErrorCode,
  AudioInUse,
  Contact,
  FoundServer,
  CallState,
  Device,
  HistoryEntry,
  HostState,
  LogLevel,
  PeerEvent,
  PeerState,
  Scope,
  Settings,
  SignalingState,
  TrustStatus,
} from "./types";
import { defaultSettings, stoppedHost } from "./types";
import { listNames, parseInvite } from "./format";
import type { Invite } from "./format";

/** The room's conversation; a present peer's is keyed by its id, an away contact's by
 * this prefix and its key. */
export const ROOM = "room";
const CONTACT = "key:";

/** The conversation key of a contact (by its key) that is away. */
export function contactConversation(key: string): string {
  return CONTACT + key;
}

/** The contact's key an away contact's conversation key names; null for any other. */
export function contactKey(conversation: string): string | null {
  return conversation.startsWith(CONTACT) ? conversation.slice(CONTACT.length) : null;
}

/** Where unread counts are kept between runs (the webview's localStorage). */
export interface UnreadStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

const UNREAD_ITEM = "confab.unread";
/** Most log lines kept; older ones are dropped first. */
export const LOG_LIMIT = 5000;

export type Part =
  | "connection"
  | "peers"
  | "chat"
  | "call"
  | "levels"
  | "files"
  | "logs"
  | "settings"
  | "audio"
  | "errors"
  | "invite"
  | "view";

export interface Peer {
  id: string;
  name: string;
  state: PeerState;
  /** From the last `stats`: the path's kind (host, srflx, prflx or relay)… */
  candidate?: string;
  /** …how this end reaches its first hop (udp, tcp, tls)… */
  transport?: string;
  /** …and the selected pair, `TYPE ADDRESS:PORT` each. */
  pair?: { local: string; remote: string };
  rttMs?: number;
  trust?: TrustStatus;
  fingerprint?: string;
  callState?: CallState;
  muted: boolean;
  /** 0..2, 1 as sent. */
  volume: number;
  safetyCode?: string;
}

export type Delivery = "pending" | "sent" | "delivered" | "received";

export interface Message {
  /** The core's id once `chat-sent` named it; a local one before. */
  id: string;
  own: boolean;
  from: string | null;
  name: string;
  text: string;
  ts: number;
  scope: Scope;
  delivery: Delivery;
  /** Peers it went out to, and those that acknowledged it. */
  to: string[];
  acked: string[];
  /** The writer's key, when the core named it. */
  authorKey?: string;
  /** Said before this install came, passed on by a peer that holds the room's history. */
  fromHistory?: boolean;
}

export interface Conversation {
  key: string;
  messages: Message[];
  unread: number;
}

export interface Transfer {
  file: string;
  peer: string;
  name: string;
  size: number;
  bytes: number;
  incoming: boolean;
  status: "offered" | "incoming" | "moving" | "done" | "failed" | "rejected";
  path?: string;
  /** Bytes per second, smoothed over the progress reports (absent until two have come). */
  rate?: number;
  /** The last progress report: when it came (ms) and how far it was. */
  sampledAt?: number;
  sampledBytes?: number;
}

/** How much a new throughput reading counts against the smoothed one. */
const RATE_WEIGHT = 0.3;

/** Seconds left at the transfer's current rate, if it has one. */
export function secondsLeft(t: Transfer): number | undefined {
  if (!t.rate || t.rate <= 0) return undefined;
  return Math.max(0, (t.size - t.bytes) / t.rate);
}

export interface LogLine {
  level: LogLevel;
  msg: string;
  peer?: string;
  ts: number;
}

export type ErrorArea = "connection" | "host" | "call" | "audio" | "files" | "chat" | "settings" | "general";

export interface ShownError {
  area: ErrorArea;
  code: AnyErrorCode;
  message: string;
  peer?: string;
  /** The room it is about; shown only while that room is on screen. */
  room?: string;
}

export type View = "chat" | "settings" | "logs" | "onboarding" | "verify";

export interface CallInfo {
  /** The call id, once known. */
  id: string | null;
  phase: "idle" | "calling" | "active";
  muted: boolean;
}

/** What one room shows: its connection, people, conversations and call. Each room the
 * app is in has its own, kept while another is on screen. */
export interface RoomState {
  signaling: SignalingState | "idle";
  /** Whether signaling ever connected in this session: a later `disconnected` is a drop. */
  everConnected: boolean;
  ownId: string | null;
  /** The room's name, once joined. */
  room: string | null;
  peers: Map<string, Peer>;
  conversations: Map<string, Conversation>;
  /** Everyone this install has met, by key. */
  contacts: Map<string, Contact>;
  active: string;
  call: CallInfo;
  /** A call ringing here: who calls, and who else is in or invited to it. */
  incoming: { call: string; from: string; members: string[] } | null;
  /** dBFS by peer id; "" is the own microphone. */
  levels: Map<string, number>;
  transfers: Map<string, Transfer>;
  /** Peer whose safety code the verify screen shows. */
  verifying: string | null;
}

/** A room's state before anything happened in it; its conversation starts with `unread`
 * (a count kept from the last run). */
export function initialRoom(unread = 0): RoomState {
  return {
    signaling: "idle",
    everConnected: false,
    ownId: null,
    room: null,
    peers: new Map(),
    conversations: new Map([[ROOM, { key: ROOM, messages: [], unread }]]),
    contacts: new Map(),
    active: ROOM,
    call: { id: null, phase: "idle", muted: false },
    incoming: null,
    levels: new Map(),
    transfers: new Map(),
    verifying: null,
  };
}

/** Everything the window shows. The room parts (`peers`, `call`…) read and write the room
 * on screen (`current`); `rooms` holds every room's. */
export class State {
  view: View = "onboarding";
  settings: Settings = defaultSettings();
  host: HostState = stoppedHost();
  /** Every room's state, by the room's id in Settings. */
  readonly rooms = new Map<string, RoomState>();
  /** The id of the room on screen. */
  current = "";
  /** Makes the state of a room first heard of (the store gives it the counts kept). */
  newRoom: (id: string) => RoomState = () => initialRoom();
  devices: { inputs: Device[]; outputs: Device[] } | null = null;
  /** What the core has open, once it said. */
  audio: AudioInUse | null = null;
  logs: LogLine[] = [];
  errors: ShownError[] = [];
  /** Servers found on the local network; null until looked for, "looking" meanwhile. */
  found: FoundServer[] | "looking" | null = null;
  /** An invite link opened with the app, waiting for the user to join or not. */
  invite: Invite | null = null;
  /** The desktop-wide talk shortcut while the app holds it (push-to-talk on, and a desktop
   * that allows it). */
  talkShortcut: string | null = null;

  /** The room `id`'s state, empty the first time it is asked for. */
  roomState(id: string): RoomState {
    let room = this.rooms.get(id);
    if (!room) {
      room = this.newRoom(id);
      this.rooms.set(id, room);
    }
    return room;
  }

  /** The room on screen. */
  get here(): RoomState {
    return this.roomState(this.current);
  }

  get signaling(): SignalingState | "idle" {
    return this.here.signaling;
  }
  set signaling(value: SignalingState | "idle") {
    this.here.signaling = value;
  }
  get everConnected(): boolean {
    return this.here.everConnected;
  }
  get ownId(): string | null {
    return this.here.ownId;
  }
  get room(): string | null {
    return this.here.room;
  }
  get peers(): Map<string, Peer> {
    return this.here.peers;
  }
  get conversations(): Map<string, Conversation> {
    return this.here.conversations;
  }
  get contacts(): Map<string, Contact> {
    return this.here.contacts;
  }
  get active(): string {
    return this.here.active;
  }
  set active(value: string) {
    this.here.active = value;
  }
  get call(): CallInfo {
    return this.here.call;
  }
  set call(value: CallInfo) {
    this.here.call = value;
  }
  get incoming(): RoomState["incoming"] {
    return this.here.incoming;
  }
  set incoming(value: RoomState["incoming"]) {
    this.here.incoming = value;
  }
  get levels(): Map<string, number> {
    return this.here.levels;
  }
  get transfers(): Map<string, Transfer> {
    return this.here.transfers;
  }
  get verifying(): string | null {
    return this.here.verifying;
  }
  set verifying(value: string | null) {
    this.here.verifying = value;
  }
}

export function initialState(): State {
  return new State();
}

/** Where an error code belongs on screen. */
export function errorArea(code: AnyErrorCode): ErrorArea {
  switch (code) {
    case "server-unreachable":
    case "room-full":
    case "bad-password":
    case "already-connected":
    case "not-connected":
    case "not-joined":
    case "unsupported-version":
    case "rate-limited":
      return "connection";
    case "busy":
    case "not-in-call":
    case "unknown-call":
      return "call";
    case "audio":
    case "audio-devices":
    case "audio-in":
    case "audio-out":
      return "audio";
    case "file-transfer":
    case "file-unreadable":
    case "file-unwritable":
    case "unknown-file":
      return "files";
    case "host":
      return "host";
    case "settings":
      return "settings";
    default:
      return "general";
  }
}

/** The error in plain words: what happened and what to do. */
export function plainError(code: AnyErrorCode, message: string): string {
  switch (code) {
    case "server-unreachable":
      return "Can't reach the signaling server. Check the address, or host a server here in Settings.";
    case "room-full":
      return "That room is full. Try another room name.";
    case "bad-password":
      return "Wrong password for this room.";
    case "audio-in":
      return `No microphone could be opened (${message}). Others will hear silence.`;
    case "audio-out":
      return `No speakers could be opened (${message}).`;
    case "busy":
      return "Already in a call. Hang up first.";
    case "identity-changed":
      return `Warning: ${message}. This may not be who you verified.`;
    default:
      return message;
  }
}

export interface Notifier {
  (title: string, body: string): void;
}

export class Store {
  state: State = initialState();
  /** Bumped on every change of a part; views compare with what they last drew. */
  readonly revs = new Map<Part, number>();
  private listeners: (() => void)[] = [];
  private scheduled = false;
  /** Own messages sent and not yet named by `chat-sent`, oldest first, by room. */
  private unnamed = new Map<string, Message[]>();
  private localId = 0;
  notifier: Notifier = () => {};
  /** Whether the window is in front; unread counts and notifications use it. */
  focused = true;
  /** Unread counts by a name that outlives a run: `room:ID`, or a peer's key. */
  private keptUnread: Record<string, number>;

  constructor(private readonly unreadStorage: UnreadStorage | null = globalThis.localStorage ?? null) {
    this.keptUnread = readUnread(unreadStorage);
    // A room's count must be there from its first event on: a count written back before
    // it was restored would be lost.
    this.state.newRoom = (id) => initialRoom(this.keptUnread[`room:${id}`] ?? 0);
  }

  rev(part: Part): number {
    return this.revs.get(part) ?? 0;
  }

  subscribe(listener: () => void): void {
    this.listeners.push(listener);
  }

  touch(...parts: Part[]): void {
    for (const part of parts) this.revs.set(part, this.rev(part) + 1);
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => this.flush();
    if (typeof requestAnimationFrame === "function") requestAnimationFrame(run);
    else setTimeout(run, 0);
  }

  /** Runs the listeners now (tests call it instead of waiting for a frame). */
  flush(): void {
    this.scheduled = false;
    for (const listener of this.listeners) listener();
  }

  /** A peer's name in a room (the one on screen unless named). */
  peerName(id: string | null | undefined, room: RoomState = this.state.here): string {
    if (!id) return "Someone";
    const contact = contactKey(id);
    if (contact !== null) return room.contacts.get(contact)?.name ?? "Someone";
    return room.peers.get(id)?.name ?? id;
  }

  /** Who else is in a call, as the tail of a sentence: "" for nobody, else ", with Bob and Cy". */
  alsoInCall(members: readonly string[], room: RoomState = this.state.here): string {
    return members.length === 0 ? "" : `, with ${listNames(members.map((m) => this.peerName(m, room)))}`;
  }

  /** A conversation of a room (the one on screen unless named), made empty the first time. */
  conversation(key: string, room: string = this.state.current): Conversation {
    const conversations = this.state.roomState(room).conversations;
    let conversation = conversations.get(key);
    if (!conversation) {
      const kept = this.lastingName(key, room);
      conversation = { key, messages: [], unread: kept ? (this.keptUnread[kept] ?? 0) : 0 };
      conversations.set(key, conversation);
    }
    return conversation;
  }

  /** The room's name as the user knows it: as joined, else as Settings list it. */
  roomName(id: string): string {
    return this.state.rooms.get(id)?.room ?? this.state.settings.rooms.find((r) => r.id === id)?.room ?? id;
  }

  /** Messages not yet read in a room, all its conversations together. */
  roomUnread(id: string): number {
    let unread = 0;
    for (const conversation of this.state.rooms.get(id)?.conversations.values() ?? []) unread += conversation.unread;
    return unread;
  }

  /** The room whose call is ringing or under way, if any (the app is in one call at a time). */
  callRoom(): string | null {
    for (const [id, room] of this.state.rooms) if (room.call.phase !== "idle") return id;
    return null;
  }

  /** The first room where a call rings for this install, with its id. */
  ringing(): { room: string; incoming: NonNullable<RoomState["incoming"]> } | null {
    for (const [id, room] of this.state.rooms) if (room.incoming) return { room: id, incoming: room.incoming };
    return null;
  }

  /** Where else a contact is now: another room it is in, with its peer id there. */
  presentElsewhere(key: string): { room: string; peer: string } | null {
    for (const [id, room] of this.state.rooms) {
      if (id === this.state.current) continue;
      for (const peer of room.peers.values()) {
        if (peer.fingerprint === key && peer.state !== "closed") return { room: id, peer: peer.id };
      }
    }
    return null;
  }

  /** Contacts that are not in the room now, the most recently seen first. */
  awayContacts(): Contact[] {
    const present = new Set([...this.state.peers.values()].map((p) => p.fingerprint));
    return [...this.state.contacts.values()]
      .filter((c) => !present.has(c.key))
      .sort((a, b) => b.last_seen - a.last_seen);
  }

  /** The name a conversation's unread count is kept under between runs, once it has one:
   * the room's by its id, a direct one by the peer's key and room id. */
  private lastingName(key: string, room: string): string | undefined {
    if (key === ROOM) return `room:${room}`;
    const contact = contactKey(key) ?? this.state.rooms.get(room)?.peers.get(key)?.fingerprint;
    return contact === undefined ? undefined : `${room}:${contact}`;
  }

  /** Keeps the unread counts for the next run. */
  private keepUnread(): void {
    for (const [room, state] of this.state.rooms) {
      for (const [key, conversation] of state.conversations) {
        const name = this.lastingName(key, room);
        if (!name) continue;
        if (conversation.unread) this.keptUnread[name] = conversation.unread;
        else delete this.keptUnread[name];
      }
    }
    try {
      this.unreadStorage?.setItem(UNREAD_ITEM, JSON.stringify(this.keptUnread));
    } catch {
      // Storage full or refused: the counts last this run only.
    }
  }

  /** A conversation that gained a lasting name takes the count kept under it. */
  private restoreUnread(key: string, room: string): void {
    const name = this.lastingName(key, room);
    const conversation = this.state.rooms.get(room)?.conversations.get(key);
    const kept = name ? this.keptUnread[name] : undefined;
    if (kept && conversation && !conversation.unread) {
      conversation.unread = kept;
      this.touch("peers", "chat");
    }
  }

  // ----- user actions -----

  setView(view: View): void {
    this.state.view = view;
    this.touch("view");
  }

  open(key: string): void {
    this.state.active = key;
    this.conversation(key).unread = 0;
    this.keepUnread();
    if (this.state.view !== "chat") this.state.view = "chat";
    this.touch("chat", "view", "peers");
  }

  /** Shows another room, at the conversation it was left on. */
  switchRoom(id: string): void {
    this.state.current = id;
    this.state.roomState(id);
    this.open(this.state.active);
    this.touch("connection", "peers", "chat", "call", "levels", "files", "errors");
  }

  /** A room left: its state goes, and another is shown if it was on screen. */
  forgetRoom(id: string): void {
    this.state.rooms.delete(id);
    this.unnamed.delete(id);
    this.state.errors = this.state.errors.filter((e) => e.room !== id);
    this.keepUnread();
    if (this.state.current === id) this.switchRoom(this.state.settings.rooms.find((r) => r.id !== id)?.id ?? "");
  }

  setFocused(focused: boolean): void {
    this.focused = focused;
    if (focused && this.state.view === "chat") {
      const conversation = this.conversation(this.state.active);
      if (conversation.unread) {
        conversation.unread = 0;
        this.keepUnread();
        this.touch("chat", "peers");
      }
    }
  }

  setFound(found: FoundServer[] | "looking"): void {
    this.state.found = found;
    this.touch("settings");
  }

  /** Records an own message as it is sent; `chat-sent` names it. */
  addOwnMessage(text: string, to: string | null): Message {
    const message: Message = {
      id: `local-${++this.localId}`,
      own: true,
      from: this.state.ownId,
      name: this.state.settings.name,
      text,
      ts: Date.now(),
      scope: to ? "direct" : "room",
      delivery: "pending",
      to: [],
      acked: [],
    };
    this.conversation(to ?? ROOM).messages.push(message);
    this.unnamedIn(this.state.current).push(message);
    this.touch("chat");
    return message;
  }

  /** A send the backend refused: the message is marked as not sent. */
  failOwnMessage(message: Message): void {
    for (const [room, waiting] of this.unnamed) this.unnamed.set(room, waiting.filter((m) => m !== message));
    message.delivery = "pending";
    this.showError({ area: "chat", code: "send", message: "Message not sent" });
  }

  setSettings(settings: Settings): void {
    this.state.settings = settings;
    this.touch("settings");
  }

  /** A room's own messages waiting for `chat-sent`. */
  private unnamedIn(room: string): Message[] {
    let waiting = this.unnamed.get(room);
    if (!waiting) {
      waiting = [];
      this.unnamed.set(room, waiting);
    }
    return waiting;
  }

  setTalkShortcut(shortcut: string | null): void {
    this.state.talkShortcut = shortcut;
    this.touch("settings");
  }

  setHost(host: HostState): void {
    this.state.host = host;
    this.touch("settings");
  }

  setMuted(muted: boolean, room: string = this.state.current): void {
    this.state.roomState(room).call.muted = muted;
    this.touch("call");
  }

  setVolume(peer: string, volume: number, room: string = this.state.current): void {
    const p = this.state.roomState(room).peers.get(peer);
    if (p) p.volume = volume;
    this.touch("call");
  }

  /** The room the call bar is about: the call's, or the one on screen when there is none. */
  callState(): RoomState {
    const room = this.callRoom();
    return room === null ? this.state.here : this.state.roomState(room);
  }

  /** Connected peers of the call's room who are neither in the call nor ringing: whom it
   * can grow to. */
  outsideCall(): Peer[] {
    return [...this.callState().peers.values()].filter((p) => p.state === "connected" && p.callState !== "active" && p.callState !== "ringing");
  }

  startCalling(room: string = this.state.current): void {
    const state = this.state.roomState(room);
    state.call = { id: null, phase: "calling", muted: state.call.muted };
    this.touch("call", "peers");
  }

  /** After `hangup`: the call is over here at once, whatever the others do. */
  endCall(room: string = this.state.current): void {
    const state = this.state.roomState(room);
    state.call = { id: null, phase: "idle", muted: false };
    state.levels.clear();
    for (const peer of state.peers.values()) {
      peer.callState = undefined;
      peer.muted = false;
    }
    this.touch("call", "peers", "levels");
  }

  clearIncoming(room: string = this.state.current): void {
    this.state.roomState(room).incoming = null;
    this.touch("call");
  }

  clearLogs(): void {
    this.state.logs = [];
    this.touch("logs");
  }

  /** An invite link opened with the app: offered to join, or said plainly not to be one. */
  offerInvite(link: string): void {
    const invite = parseInvite(link);
    if (!invite) {
      this.showError({ area: "general", code: "invite", message: "That link is not a Confab invite." });
      return;
    }
    this.state.invite = invite;
    this.touch("invite");
  }

  /** The invite was taken up or turned down. */
  clearInvite(): void {
    this.state.invite = null;
    this.touch("invite");
  }

  showError(error: ShownError): void {
    // One error per area, peer and room: a newer one replaces it.
    this.state.errors = this.state.errors.filter((e) => !(e.area === error.area && e.peer === error.peer && e.room === error.room));
    this.state.errors.push(error);
    this.touch("errors");
  }

  /** Clears an area's errors: the room on screen's and those of no room. */
  dismissErrors(area: ErrorArea, room: string = this.state.current): void {
    const before = this.state.errors.length;
    this.state.errors = this.state.errors.filter((e) => e.area !== area || (e.room !== undefined && e.room !== room));
    if (this.state.errors.length !== before) this.touch("errors");
  }

  /** An area's errors to show: those of the room on screen and of no room. */
  errorsIn(area: ErrorArea): ShownError[] {
    return this.state.errors.filter((e) => e.area === area && (e.room === undefined || e.room === this.state.current));
  }

  verify(peer: string | null): void {
    this.state.verifying = peer;
    this.state.view = peer ? "verify" : "chat";
    this.touch("view", "peers");
  }

  // ----- core events -----

  /** Applies a core event of a room (the one on screen unless named); `now` (ms) times
   * file progress for throughput. */
  apply(event: PeerEvent, now: number = Date.now(), room: string = this.state.current): void {
    const s = this.state.roomState(room);
    switch (event.event) {
      case "signaling":
        s.signaling = event.state;
        if (event.state === "connected") {
          s.everConnected = true;
          s.ownId = event.id ?? s.ownId;
          s.room = event.room ?? s.room;
          this.restoreUnread(ROOM, room);
          this.dismissErrors("connection", room);
        }
        this.touch("connection");
        break;
      case "peers":
        for (const p of event.peers) this.upsertPeer(s, p.id, p.name, p.state);
        this.touch("peers");
        break;
      case "peer-joined":
        this.upsertPeer(s, event.peer.id, event.peer.name, "new");
        this.touch("peers");
        break;
      case "peer-left":
        s.peers.delete(event.id);
        s.levels.delete(event.id);
        this.touch("peers", "call", "chat");
        break;
      case "peer-state": {
        const peer = s.peers.get(event.peer);
        if (peer) {
          peer.state = event.state;
          this.touch("peers");
        }
        break;
      }
      case "stats": {
        const peer = s.peers.get(event.peer);
        if (peer) {
          peer.rttMs = event.rtt_ms;
          peer.candidate = event.candidate_type;
          peer.transport = event.transport;
          peer.pair =
            event.local_candidate && event.remote_candidate
              ? { local: event.local_candidate, remote: event.remote_candidate }
              : undefined;
          this.touch("peers");
        }
        break;
      }
      case "trust": {
        const peer = s.peers.get(event.peer);
        if (peer) {
          peer.trust = event.status;
          peer.fingerprint = event.fingerprint;
          this.conversation(peer.id, room);
          this.restoreUnread(peer.id, room);
          this.touch("peers");
        }
        break;
      }
      case "contacts":
        s.contacts = new Map(event.contacts.map((c) => [c.key, c]));
        this.touch("peers");
        break;
      case "safety-code": {
        const peer = s.peers.get(event.peer);
        if (peer) {
          peer.safetyCode = event.code;
          this.touch("peers", "view");
        }
        break;
      }
      case "chat":
        this.receiveChat(event, room);
        break;
      case "chat-sent": {
        const message = this.unnamedIn(room).shift();
        if (message) {
          message.id = event.id;
          message.to = event.to;
          message.delivery = event.to.length ? "sent" : "pending";
          this.touch("chat");
        }
        break;
      }
      case "ack":
        this.acknowledge(s, event.peer, event.id);
        break;
      case "history":
        this.mergeHistory(event.peer ?? (event.key ? contactConversation(event.key) : ROOM), event.messages, room);
        break;
      case "call-incoming":
        s.incoming = { call: event.call, from: event.from, members: event.members ?? [] };
        this.notify("Incoming call", `${this.peerName(event.from, s)} is calling you${this.alsoInCall(s.incoming.members, s)}${this.inRoom(room)}`);
        this.touch("call");
        break;
      case "call-state":
        this.applyCallState(s, event.call, event.peer, event.state, room);
        break;
      case "muted":
        if (event.peer === undefined) s.call.muted = event.muted;
        else {
          const peer = s.peers.get(event.peer);
          if (peer) peer.muted = event.muted;
        }
        this.touch("call", "peers");
        break;
      case "level":
        s.levels.set(event.peer ?? "", event.dbfs);
        this.touch("levels");
        break;
      case "devices":
        this.state.devices = { inputs: event.inputs, outputs: event.outputs };
        this.touch("audio");
        break;
      case "audio": {
        const { event: _, ...audio } = event;
        this.state.audio = audio;
        this.dismissErrors("audio");
        this.touch("audio");
        break;
      }
      case "file-offered":
        s.transfers.set(event.file, {
          file: event.file,
          peer: event.to,
          name: event.name,
          size: event.size,
          bytes: 0,
          incoming: false,
          status: "offered",
        });
        this.touch("files");
        break;
      case "file-incoming":
        s.transfers.set(event.file, {
          file: event.file,
          peer: event.from,
          name: event.name,
          size: event.size,
          bytes: 0,
          incoming: true,
          status: "incoming",
        });
        this.notify("File offered", `${this.peerName(event.from, s)} wants to send you ${event.name}${this.inRoom(room)}`);
        this.touch("files");
        break;
      case "file-progress": {
        const transfer = s.transfers.get(event.file);
        if (transfer) {
          if (transfer.sampledAt !== undefined && transfer.sampledBytes !== undefined && now > transfer.sampledAt) {
            const reading = ((event.bytes - transfer.sampledBytes) * 1000) / (now - transfer.sampledAt);
            transfer.rate = transfer.rate === undefined ? reading : transfer.rate + RATE_WEIGHT * (reading - transfer.rate);
          }
          transfer.sampledAt = now;
          transfer.sampledBytes = event.bytes;
          transfer.bytes = event.bytes;
          transfer.size = event.size;
          if (transfer.status !== "done" && transfer.status !== "failed") transfer.status = "moving";
          this.touch("files");
        }
        break;
      }
      case "file-done": {
        const transfer = s.transfers.get(event.file);
        if (transfer) {
          transfer.status = event.ok ? "done" : "failed";
          if (event.ok) transfer.bytes = transfer.size;
          if (event.path) transfer.path = event.path;
          this.touch("files");
        }
        break;
      }
      case "log": {
        const logs = this.state.logs;
        logs.push({ level: event.level, msg: event.msg, peer: event.peer, ts: event.ts });
        if (logs.length > LOG_LIMIT) logs.splice(0, logs.length - LOG_LIMIT);
        this.touch("logs");
        break;
      }
      case "error": {
        const area = errorArea(event.code);
        this.showError({
          area,
          code: event.code,
          message: plainError(event.code, event.message),
          peer: event.peer,
          // Device errors are the app's, whichever room's peer met them.
          ...(area === "audio" ? {} : { room }),
        });
        if (event.code === "busy" || event.code === "not-in-call") this.endCallIfNobody(s);
        break;
      }
      case "channel":
        // Channel states show through peer states; the logs panel has the detail.
        break;
    }
  }

  private upsertPeer(room: RoomState, id: string, name: string, state: PeerState): void {
    const existing = room.peers.get(id);
    if (existing) {
      existing.name = name;
      if (state !== "new" || existing.state === "closed") existing.state = state;
    } else {
      room.peers.set(id, { id, name, state, muted: false, volume: 1 });
    }
  }

  /** The tail of a notification about a room not on screen: " in NAME". */
  private inRoom(room: string): string {
    return room === this.state.current ? "" : ` in ${this.roomName(room)}`;
  }

  private receiveChat(event: Extract<PeerEvent, { event: "chat" }>, room: string): void {
    const { from, id, text, ts, scope, author, history } = event;
    const key = scope === "direct" ? from : ROOM;
    const conversation = this.conversation(key, room);
    if (conversation.messages.some((m) => m.id === id)) return;
    const message: Message = {
      id,
      own: false,
      from,
      name: author?.name || this.peerName(from, this.state.roomState(room)),
      text,
      ts,
      scope,
      delivery: "received",
      to: [],
      acked: [],
      authorKey: author?.key,
      fromHistory: history,
    };
    if (history) {
      // What was said before this install came: in its place in time, without a
      // notification or an unread count for each.
      const at = conversation.messages.findIndex((m) => m.ts > ts);
      conversation.messages.splice(at < 0 ? conversation.messages.length : at, 0, message);
      this.touch("chat");
      return;
    }
    conversation.messages.push(message);
    const seen = this.focused && this.state.view === "chat" && this.state.current === room && this.state.active === key;
    if (!seen) {
      conversation.unread += 1;
      this.keepUnread();
    }
    const where = scope === "direct" ? this.inRoom(room) : ` in ${this.roomName(room)}`;
    this.notify(`${message.name}${where}`, text);
    this.touch("chat", "peers");
  }

  private acknowledge(room: RoomState, peer: string, id: string): void {
    for (const conversation of room.conversations.values()) {
      const message = conversation.messages.find((m) => m.own && m.id === id);
      if (!message) continue;
      if (!message.acked.includes(peer)) message.acked.push(peer);
      if (!message.to.includes(peer)) message.to.push(peer);
      // Delivered once everyone it went out to has it.
      message.delivery = message.to.every((p) => message.acked.includes(p)) ? "delivered" : "sent";
      this.touch("chat");
      return;
    }
  }

  private mergeHistory(key: string, entries: HistoryEntry[], room: string): void {
    const conversation = this.conversation(key, room);
    const known = new Set(conversation.messages.map((m) => m.id));
    const older: Message[] = [];
    for (const entry of entries) {
      if (known.has(entry.id)) continue;
      const own = entry.from === undefined;
      older.push({
        id: entry.id,
        own,
        from: entry.from ?? null,
        name: own ? this.state.settings.name : entry.name,
        text: entry.text,
        ts: entry.ts,
        scope: entry.scope,
        // A message no reader has had yet shows as pending, as one typed now.
        delivery: entry.state === "queued" ? "pending" : entry.state,
        to: [],
        acked: [],
      });
    }
    if (!older.length) return;
    conversation.messages = [...older, ...conversation.messages].sort((a, b) => a.ts - b.ts);
    this.touch("chat");
  }

  private applyCallState(s: RoomState, call: string, peerId: string, state: CallState, room: string): void {
    const peer = s.peers.get(peerId);
    if (peer) peer.callState = state;
    if (s.incoming?.call === call && state !== "ringing" && state !== "active") s.incoming = null;
    if (state === "active") {
      s.call.id = call;
      s.call.phase = "active";
      if (s.incoming?.call === call) s.incoming = null;
    } else if (state === "ringing") {
      s.call.id = call;
      if (s.call.phase === "idle") s.call.phase = "calling";
    } else if (state === "declined" || state === "busy") {
      const words = state === "declined" ? "declined the call" : "is busy in another call";
      this.showError({ area: "call", code: state, message: `${this.peerName(peerId, s)} ${words}.`, peer: peerId, room });
    }
    if (state === "ended" || state === "declined" || state === "busy") {
      s.levels.delete(peerId);
      this.endCallIfNobody(s);
    }
    this.touch("call", "peers", "levels");
  }

  /** The call is over when no peer is ringing or in it any more. */
  private endCallIfNobody(room: RoomState): void {
    const live = [...room.peers.values()].some((p) => p.callState === "ringing" || p.callState === "active");
    if (!live && room.call.phase !== "idle") {
      room.call = { id: null, phase: "idle", muted: false };
      room.levels.clear();
      this.touch("call", "levels");
    }
  }

  private notify(title: string, body: string): void {
    if (!this.focused) this.notifier(title, body);
  }
}

function readUnread(storage: UnreadStorage | null): Record<string, number> {
  try {
    const kept: unknown = JSON.parse(storage?.getItem(UNREAD_ITEM) ?? "{}");
    if (typeof kept !== "object" || kept === null) return {};
    return Object.fromEntries(Object.entries(kept).filter(([, n]) => typeof n === "number" && n > 0));
  } catch {
    return {};
  }
}
