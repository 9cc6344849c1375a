// The core API's shapes (docs/peer-api.md), as the page receives and sends them.

export type SignalingState = "connecting" | "connected" | "reconnecting" | "disconnected";
export type PeerState = "new" | "connecting" | "connected" | "disconnected" | "failed" | "closed";
export type CallState = "ringing" | "active" | "declined" | "busy" | "ended";
export type LogLevel = "debug" | "info" | "warn" | "error";
export type TrustStatus = "verified" | "changed" | "unverified";
export type Scope = "room" | "direct";

/** Who wrote a message: its name then, and its key (the DTLS fingerprint). */
export interface Author {
  name: string;
  key: string;
}

/** Someone this install has met, as the `contacts` event lists them. */
export interface Contact {
  key: string;
  name: string;
  /** Names it went by before, the most recent first. */
  earlier_names?: string[];
  verified: boolean;
  /** Unix ms. */
  last_seen: number;
}

export interface HistoryEntry {
  id: string;
  from?: string;
  name: string;
  text: string;
  ts: number;
  scope: Scope;
  author: Author;
  state: "queued" | "sent" | "delivered" | "received";
}

export interface Device {
  name: string;
  default: boolean;
  /** The sound system's own name; `device:ID` takes it too. */
  id?: string;
}

/** The devices in use (the `audio` event). */
export interface AudioInUse {
  input: string;
  output: string;
  input_name?: string;
  output_name?: string;
  noise_suppression: boolean;
  echo_cancellation: boolean;
}

/** The `code` of a core `error` event (crates/confab-mesh/src/error.rs). */
export type ErrorCode =
  | "bad-message"
  | "not-joined"
  | "already-joined"
  | "unknown-peer"
  | "room-full"
  | "bad-password"
  | "unsupported-version"
  | "too-large"
  | "rate-limited"
  | "unknown"
  | "already-connected"
  | "not-connected"
  | "server-unreachable"
  | "bad-command"
  | "bad-signal"
  | "negotiation"
  | "webrtc"
  | "ice-failed"
  | "ice-server-unsupported"
  | "turn-auth-failed"
  | "send-failed"
  | "identity-changed"
  | "store"
  | "busy"
  | "not-in-call"
  | "unknown-call"
  | "audio"
  | "audio-devices"
  | "audio-in"
  | "audio-out"
  | "file-transfer"
  | "file-unreadable"
  | "file-unwritable"
  | "unknown-file";

/** The codes of the shell's own errors (src-tauri/src/error.rs). */
export type ShellErrorCode = "bad-command" | "stopped" | "identity" | "settings" | "host" | "discovery" | "folder" | "unknown-room" | "no-room";

/** A server announced on the local network (crates/confab-signal/src/lan.rs). */
export interface FoundServer {
  name: string;
  url: string;
  /** Its open rooms, largest first. */
  rooms: { room: string; people: number }[];
  people: number;
}

/** One finding of the connection test (crates/confab-mesh/src/connection_test.rs). */
export interface ConnectionFinding {
  check: "server" | "reflexive" | "mapping" | "relay";
  /** For a relay: how it is reached. */
  transport?: "udp" | "tcp" | "tls";
  /** Whether it works; null when it cannot be told from here. */
  ok: boolean | null;
  /** What it means, in plain words. */
  words: string;
}

/** Problems the page finds itself; `shell` is a shell error without a code. */
export type PageErrorCode = "chooser" | "no-folder" | "start" | "send" | "invalid" | "declined" | "busy" | "shell" | "invite";

export type AnyErrorCode = ErrorCode | ShellErrorCode | PageErrorCode;

export type PeerEvent =
  | { event: "signaling"; state: SignalingState; id?: string; room?: string }
  | { event: "peers"; peers: { id: string; name: string; state: PeerState }[] }
  | { event: "peer-joined"; peer: { id: string; name: string } }
  | { event: "peer-left"; id: string }
  | { event: "peer-state"; peer: string; state: PeerState }
  | { event: "channel"; peer: string; label: string; state: "open" | "closed" }
  | {
      event: "chat";
      from: string;
      id: string;
      text: string;
      ts: number;
      scope: Scope;
      author: Author;
      history: boolean;
    }
  | { event: "chat-sent"; id: string; to: string[] }
  | { event: "ack"; peer: string; id: string }
  | {
      event: "stats";
      peer: string;
      rtt_ms: number;
      bytes_sent: number;
      bytes_received: number;
      candidate_type: string;
      local_candidate?: string;
      remote_candidate?: string;
      transport?: "udp" | "tcp" | "tls";
    }
  | { event: "call-incoming"; call: string; from: string; members?: string[] }
  | { event: "call-state"; call: string; peer: string; state: CallState }
  | { event: "muted"; peer?: string; muted: boolean }
  | { event: "level"; peer?: string; dbfs: number }
  | { event: "file-offered"; file: string; to: string; name: string; size: number }
  | { event: "file-incoming"; file: string; from: string; name: string; size: number; sha256: string }
  | { event: "file-progress"; file: string; peer: string; bytes: number; size: number }
  | { event: "file-done"; file: string; peer: string; ok: boolean; path?: string }
  | { event: "devices"; inputs: Device[]; outputs: Device[] }
  | ({ event: "audio" } & AudioInUse)
  | { event: "safety-code"; peer: string; code: string }
  | { event: "trust"; peer: string; name: string; fingerprint: string; status: TrustStatus }
  | { event: "history"; peer?: string; room?: string; key?: string; messages: HistoryEntry[] }
  | { event: "contacts"; contacts: Contact[] }
  | { event: "log"; level: LogLevel; msg: string; peer?: string; ts: number }
  | { event: "error"; code: ErrorCode; message: string; peer?: string };

export type PeerCommand =
  | { cmd: "connect"; server: string; room: string; name: string; password?: string }
  | { cmd: "disconnect" }
  | { cmd: "leave" }
  | { cmd: "peers" }
  | { cmd: "chat"; text: string; to?: string; to_key?: string }
  | { cmd: "stats"; peer?: string }
  | { cmd: "call"; peers?: string[] }
  | { cmd: "accept-call"; call: string }
  | { cmd: "decline-call"; call: string }
  | { cmd: "hangup" }
  | { cmd: "mute"; muted: boolean }
  | { cmd: "volume"; peer: string; volume: number }
  | { cmd: "send-file"; to: string; path: string }
  | { cmd: "accept-file"; file: string; dir: string }
  | { cmd: "reject-file"; file: string }
  | { cmd: "devices" }
  | { cmd: "set-audio"; input?: string; output?: string; noise_suppression?: boolean; echo_cancellation?: boolean }
  | { cmd: "mic-test"; on: boolean }
  | { cmd: "safety-code"; peer: string }
  | { cmd: "verify"; peer: string }
  | { cmd: "history"; peer?: string; key?: string }
  | { cmd: "contacts" };

/** The shell's settings (src-tauri/src/settings.rs). */
/** One room the app is in (crates/confab-session/src/settings.rs). */
export interface RoomSettings {
  /** The app's name for it, which its events carry. */
  id: string;
  server: string;
  room: string;
  /** Empty: the room has no password. */
  password: string;
}

export interface Settings {
  onboarded: boolean;
  name: string;
  /** Every room the app is in, in the sidebar's order; each is joined at start. */
  rooms: RoomSettings[];
  ice_servers: string[];
  audio_in: string;
  audio_out: string;
  noise_suppression: boolean;
  echo_cancellation: boolean;
  /** In a call, the microphone is open only while Space is held. */
  push_to_talk: boolean;
  /** Playback volume per peer key (DTLS fingerprint), 0..2; absent is 1. */
  volumes: Record<string, number>;
  host: { enabled: boolean; port: number; lan: boolean };
}

/** The hosted signaling server (src-tauri/src/host.rs). */
export interface HostState {
  running: boolean;
  port: number | null;
  urls: string[];
  local_url: string | null;
  connections: number;
  peers: number;
  rooms: number;
}

export interface Boot {
  settings: Settings;
  host: HostState;
  host_error: string | null;
  /** Where accepted files go. */
  downloads: string | null;
  /** An invite link the app was opened with (`confab://join?…`). */
  invite: string | null;
}

/** An error from the shell itself: `{code, message}`. */
export interface ShellError {
  code: string;
  message: string;
}

export function defaultSettings(): Settings {
  return {
    onboarded: false,
    name: "Me",
    rooms: [{ id: "r1", server: "ws://127.0.0.1:8787/ws", room: "lobby", password: "" }],
    ice_servers: [],
    audio_in: "default",
    audio_out: "default",
    noise_suppression: true,
    echo_cancellation: true,
    push_to_talk: false,
    volumes: {},
    host: { enabled: true, port: 8787, lan: true },
  };
}

export function stoppedHost(): HostState {
  return { running: false, port: null, urls: [], local_url: null, connections: 0, peers: 0, rooms: 0 };
}
