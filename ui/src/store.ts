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
}

export type View = "chat" | "settings" | "logs" | "onboarding" | "verify";

export interface CallInfo {
  /** The call id, once known. */
  id: string | null;
  phase: "idle" | "calling" | "active";
  muted: boolean;
}

export interface State {
  view: View;
  settings: Settings;
  host: HostState;
  signaling: SignalingState | "idle";
  /** Whether signaling ever connected in this session: a later `disconnected` is a drop. */
  everConnected: boolean;
  ownId: string | null;
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
  devices: { inputs: Device[]; outputs: Device[] } | null;
  /** What the core has open, once it said. */
  audio: AudioInUse | null;
  logs: LogLine[];
  errors: ShownError[];
  /** Peer whose safety code the verify screen shows. */
  verifying: string | null;
  /** Servers found on the local network; null until looked for, "looking" meanwhile. */
  found: FoundServer[] | "looking" | null;
  /** An invite link opened with the app, waiting for the user to join or not. */
  invite: Invite | null;
  /** The desktop-wide talk shortcut while the app holds it (push-to-talk on, and a desktop
   * that allows it). */
  talkShortcut: string | null;
}

export function initialState(): State {
  return {
    view: "onboarding",
    settings: defaultSettings(),
    host: stoppedHost(),
    signaling: "idle",
    everConnected: false,
    ownId: null,
    room: null,
    peers: new Map(),
    conversations: new Map([[ROOM, { key: ROOM, messages: [], unread: 0 }]]),
    contacts: new Map(),
    active: ROOM,
    call: { id: null, phase: "idle", muted: false },
    incoming: null,
    levels: new Map(),
    transfers: new Map(),
    devices: null,
    audio: null,
    logs: [],
    errors: [],
    verifying: null,
    found: null,
    invite: null,
    talkShortcut: null,
  };
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
  /** Own messages sent and not yet named by `chat-sent`, oldest first. */
  private unnamed: Message[] = [];
  private localId = 0;
  notifier: Notifier = () => {};
  /** Whether the window is in front; unread counts and notifications use it. */
  focused = true;
  /** Unread counts by a name that outlives a run: `room:NAME`, or a peer's key. */
  private keptUnread: Record<string, number>;

  constructor(private readonly unreadStorage: UnreadStorage | null = globalThis.localStorage ?? null) {
    this.keptUnread = readUnread(unreadStorage);
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

  peerName(id: string | null | undefined): string {
    if (!id) return "Someone";
    const contact = contactKey(id);
    if (contact !== null) return this.state.contacts.get(contact)?.name ?? "Someone";
    return this.state.peers.get(id)?.name ?? id;
  }

  /** Who else is in a call, as the tail of a sentence: "" for nobody, else ", with Bob and Cy". */
  alsoInCall(members: readonly string[]): string {
    return members.length === 0 ? "" : `, with ${listNames(members.map((m) => this.peerName(m)))}`;
  }

  conversation(key: string): Conversation {
    let conversation = this.state.conversations.get(key);
    if (!conversation) {
      const kept = this.lastingName(key);
      conversation = { key, messages: [], unread: kept ? (this.keptUnread[kept] ?? 0) : 0 };
      this.state.conversations.set(key, conversation);
    }
    return conversation;
  }

  /** Contacts that are not in the room now, the most recently seen first. */
  awayContacts(): Contact[] {
    const present = new Set([...this.state.peers.values()].map((p) => p.fingerprint));
    return [...this.state.contacts.values()]
      .filter((c) => !present.has(c.key))
      .sort((a, b) => b.last_seen - a.last_seen);
  }

  /** The name a conversation's unread count is kept under between runs, once it has one. */
  private lastingName(key: string): string | undefined {
    if (key === ROOM) return `room:${this.state.room ?? this.state.settings.room}`;
    const contact = contactKey(key);
    if (contact !== null) return contact;
    return this.state.peers.get(key)?.fingerprint;
  }

  /** Keeps the unread counts for the next run. */
  private keepUnread(): void {
    for (const [key, conversation] of this.state.conversations) {
      const name = this.lastingName(key);
      if (!name) continue;
      if (conversation.unread) this.keptUnread[name] = conversation.unread;
      else delete this.keptUnread[name];
    }
    try {
      this.unreadStorage?.setItem(UNREAD_ITEM, JSON.stringify(this.keptUnread));
    } catch {
      // Storage full or refused: the counts last this run only.
    }
  }

  /** A conversation that gained a lasting name takes the count kept under it. */
  private restoreUnread(key: string): void {
    const name = this.lastingName(key);
    const conversation = this.state.conversations.get(key);
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
    this.unnamed.push(message);
    this.touch("chat");
    return message;
  }

  /** A send the backend refused: the message is marked as not sent. */
  failOwnMessage(message: Message): void {
    this.unnamed = this.unnamed.filter((m) => m !== message);
    message.delivery = "pending";
    this.showError({ area: "chat", code: "send", message: "Message not sent" });
  }

  setSettings(settings: Settings): void {
    this.state.settings = settings;
    this.touch("settings");
  }

  setTalkShortcut(shortcut: string | null): void {
    this.state.talkShortcut = shortcut;
    this.touch("settings");
  }

  setHost(host: HostState): void {
    this.state.host = host;
    this.touch("settings");
  }

  setMuted(muted: boolean): void {
    this.state.call.muted = muted;
    this.touch("call");
  }

  setVolume(peer: string, volume: number): void {
    const p = this.state.peers.get(peer);
    if (p) p.volume = volume;
    this.touch("call");
  }

  /** Connected peers who are neither in the call nor ringing: whom it can grow to. */
  outsideCall(): Peer[] {
    return [...this.state.peers.values()].filter((p) => p.state === "connected" && p.callState !== "active" && p.callState !== "ringing");
  }

  startCalling(): void {
    this.state.call = { id: null, phase: "calling", muted: this.state.call.muted };
    this.touch("call", "peers");
  }

  /** After `hangup`: the call is over here at once, whatever the others do. */
  endCall(): void {
    this.state.call = { id: null, phase: "idle", muted: false };
    this.state.levels.clear();
    for (const peer of this.state.peers.values()) {
      peer.callState = undefined;
      peer.muted = false;
    }
    this.touch("call", "peers", "levels");
  }

  clearIncoming(): void {
    this.state.incoming = null;
    this.touch("call");
  }

  clearLogs(): void {
    this.state.logs = [];
    this.touch("logs");
  }

  /** The room's conversation starts empty: another room is being joined. */
  clearRoomConversation(): void {
    this.state.conversations.set(ROOM, { key: ROOM, messages: [], unread: 0 });
    this.touch("chat");
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
    // One error per area and peer: a newer one replaces it.
    this.state.errors = this.state.errors.filter((e) => !(e.area === error.area && e.peer === error.peer));
    this.state.errors.push(error);
    this.touch("errors");
  }

  dismissErrors(area: ErrorArea): void {
    const before = this.state.errors.length;
    this.state.errors = this.state.errors.filter((e) => e.area !== area);
    if (this.state.errors.length !== before) this.touch("errors");
  }

  errorsIn(area: ErrorArea): ShownError[] {
    return this.state.errors.filter((e) => e.area === area);
  }

  verify(peer: string | null): void {
    this.state.verifying = peer;
    this.state.view = peer ? "verify" : "chat";
    this.touch("view", "peers");
  }

  // ----- core events -----

  /** Applies a core event; `now` (ms) times file progress for throughput. */
  apply(event: PeerEvent, now: number = Date.now()): void {
    const s = this.state;
    switch (event.event) {
      case "signaling":
        s.signaling = event.state;
        if (event.state === "connected") {
          s.everConnected = true;
          s.ownId = event.id ?? s.ownId;
          s.room = event.room ?? s.room;
          this.restoreUnread(ROOM);
          this.dismissErrors("connection");
        }
        this.touch("connection");
        break;
      case "peers":
        for (const p of event.peers) this.upsertPeer(p.id, p.name, p.state);
        this.touch("peers");
        break;
      case "peer-joined":
        this.upsertPeer(event.peer.id, event.peer.name, "new");
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
          this.conversation(peer.id);
          this.restoreUnread(peer.id);
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
        this.receiveChat(event);
        break;
      case "chat-sent": {
        const message = this.unnamed.shift();
        if (message) {
          message.id = event.id;
          message.to = event.to;
          message.delivery = event.to.length ? "sent" : "pending";
          this.touch("chat");
        }
        break;
      }
      case "ack":
        this.acknowledge(event.peer, event.id);
        break;
      case "history":
        this.mergeHistory(event.peer ?? (event.key ? contactConversation(event.key) : ROOM), event.messages);
        break;
      case "call-incoming":
        s.incoming = { call: event.call, from: event.from, members: event.members ?? [] };
        this.notify("Incoming call", `${this.peerName(event.from)} is calling you${this.alsoInCall(s.incoming.members)}`);
        this.touch("call");
        break;
      case "call-state":
        this.callState(event.call, event.peer, event.state);
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
        s.devices = { inputs: event.inputs, outputs: event.outputs };
        this.touch("audio");
        break;
      case "audio": {
        const { event: _, ...audio } = event;
        s.audio = audio;
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
        this.notify("File offered", `${this.peerName(event.from)} wants to send you ${event.name}`);
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
      case "log":
        s.logs.push({ level: event.level, msg: event.msg, peer: event.peer, ts: event.ts });
        if (s.logs.length > LOG_LIMIT) s.logs.splice(0, s.logs.length - LOG_LIMIT);
        this.touch("logs");
        break;
      case "error":
        this.showError({
          area: errorArea(event.code),
          code: event.code,
          message: plainError(event.code, event.message),
          peer: event.peer,
        });
        if (event.code === "busy" || event.code === "not-in-call") this.endCallIfNobody();
        break;
      case "channel":
        // Channel states show through peer states; the logs panel has the detail.
        break;
    }
  }

  private upsertPeer(id: string, name: string, state: PeerState): void {
    const existing = this.state.peers.get(id);
    if (existing) {
      existing.name = name;
      if (state !== "new" || existing.state === "closed") existing.state = state;
    } else {
      this.state.peers.set(id, { id, name, state, muted: false, volume: 1 });
    }
  }

  private receiveChat(event: Extract<PeerEvent, { event: "chat" }>): void {
    const { from, id, text, ts, scope, author, history } = event;
    const key = scope === "direct" ? from : ROOM;
    const conversation = this.conversation(key);
    if (conversation.messages.some((m) => m.id === id)) return;
    const message: Message = {
      id,
      own: false,
      from,
      name: author?.name || this.peerName(from),
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
    const seen = this.focused && this.state.view === "chat" && this.state.active === key;
    if (!seen) {
      conversation.unread += 1;
      this.keepUnread();
    }
    const where = scope === "direct" ? "" : " in the room";
    this.notify(`${message.name}${where}`, text);
    this.touch("chat", "peers");
  }

  private acknowledge(peer: string, id: string): void {
    for (const conversation of this.state.conversations.values()) {
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

  private mergeHistory(key: string, entries: HistoryEntry[]): void {
    const conversation = this.conversation(key);
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

  private callState(call: string, peerId: string, state: CallState): void {
    const s = this.state;
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
      this.showError({ area: "call", code: state, message: `${this.peerName(peerId)} ${words}.`, peer: peerId });
    }
    if (state === "ended" || state === "declined" || state === "busy") {
      s.levels.delete(peerId);
      this.endCallIfNobody();
    }
    this.touch("call", "peers", "levels");
  }

  /** The call is over when no peer is ringing or in it any more. */
  private endCallIfNobody(): void {
    const live = [...this.state.peers.values()].some((p) => p.callState === "ringing" || p.callState === "active");
    if (!live && this.state.call.phase !== "idle") {
      this.state.call = { id: null, phase: "idle", muted: false };
      this.state.levels.clear();
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
