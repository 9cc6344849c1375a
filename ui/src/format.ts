// Pure formatting: times, sizes, levels, links. No DOM here except building link nodes.

/** "14:05" today, "Mon 14:05" this week, "3 Nov 14:05" before. */
export function formatTime(ts: number, now: number = Date.now()): string {
  const date = new Date(ts);
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  const today = new Date(now);
  if (date.toDateString() === today.toDateString()) return time;
  const days = (now - ts) / 86_400_000;
  if (days >= 0 && days < 6) {
    return `${date.toLocaleDateString("en-GB", { weekday: "short" })} ${time}`;
  }
  return `${date.getDate()} ${date.toLocaleDateString("en-GB", { month: "short" })} ${time}`;
}

/** When a contact was last seen: "seen just now", "seen 5 min ago", else "seen " and the time. */
export function formatLastSeen(ts: number, now: number = Date.now()): string {
  if (ts <= 0) return "never seen";
  const minutes = Math.floor((now - ts) / 60_000);
  if (minutes < 1) return "seen just now";
  if (minutes < 60) return `seen ${minutes} min ago`;
  return `seen ${formatTime(ts, now)}`;
}

/** "14:05:09.123" for log lines. */
export function formatClock(ts: number): string {
  const date = new Date(ts);
  const ms = String(date.getMilliseconds()).padStart(3, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${ms}`;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** A throughput, e.g. "12 MiB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

/** Time left, e.g. "5 s left", "3 min left", "1 h 5 min left". */
export function formatTimeLeft(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return `${s} s left`;
  const minutes = Math.ceil(s / 60);
  if (minutes < 60) return `${minutes} min left`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min left`;
}

/** Floor of the meters: quieter than this shows as nothing. */
const METER_FLOOR_DB = -60;

/** A level in dBFS as a 0..100 meter width. */
export function meterPercent(dbfs: number | undefined): number {
  if (dbfs === undefined || !Number.isFinite(dbfs)) return 0;
  const clamped = Math.max(METER_FLOOR_DB, Math.min(0, dbfs));
  return Math.round(((clamped - METER_FLOOR_DB) / -METER_FLOOR_DB) * 100);
}

/** Two letters for an avatar. */
/** Names as a sentence lists them: "Ada", "Ada and Bob", "Ada, Bob and Cy". */
export function listNames(names: readonly string[]): string {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const first = words[0]?.[0] ?? "?";
  const second = words.length > 1 ? (words[words.length - 1]?.[0] ?? "") : (words[0]?.[1] ?? "");
  return (first + second).toUpperCase();
}

/** A stable hue for a name, so each person keeps a colour. */
export function hue(name: string): number {
  let hash = 0;
  for (const char of name) hash = (hash * 31 + (char.codePointAt(0) ?? 0)) >>> 0;
  return hash % 360;
}

export type TextPart = { text: string } | { link: string };

const LINK = /\b(?:https?:\/\/|www\.)[^\s<>"']+/gi;
/** Punctuation that ends a sentence rather than a link. */
const TRAILING = /[.,;:!?)\]}'"]+$/;

/** Splits text into plain parts and links (http, https, www.). */
export function splitLinks(text: string): TextPart[] {
  const parts: TextPart[] = [];
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    let link = match[0];
    const trailing = TRAILING.exec(link);
    if (trailing) link = link.slice(0, link.length - trailing[0].length);
    const start = match.index ?? 0;
    if (start > last) parts.push({ text: text.slice(last, start) });
    parts.push({ link });
    last = start + link.length;
  }
  if (last < text.length) parts.push({ text: text.slice(last) });
  return parts;
}

/** The address a link opens: `www.` ones get https. */
export function linkHref(link: string): string {
  return /^https?:\/\//i.test(link) ? link : `https://${link}`;
}

/** Checks one STUN/TURN entry as the core parses it; null when fine. */
export function iceServerProblem(spec: string): string | null {
  const match = /^(stuns?|turns?):(.+)$/.exec(spec.trim());
  if (!match) return `"${spec}": start with stun: or turn:`;
  const [, scheme, rest] = match;
  if (scheme?.startsWith("turn") && !/^[^:@]+:[^@]+@.+/.test(rest ?? "")) {
    return `"${spec}": a TURN server needs user:password@host:port`;
  }
  return null;
}

/** Checks a signaling server URL; null when fine. */
export function serverProblem(url: string): string | null {
  try {
    const parsed = new URL(url.trim());
    if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") return "The server address starts with ws:// or wss://";
    return null;
  } catch {
    return "That is not a server address (e.g. ws://192.168.1.20:8787/ws)";
  }
}

/** Where an invite leads: a server and a room (the password is asked on joining). */
export interface Invite {
  server: string;
  room: string;
}

/** The invite link the app opens: `confab://join?server=…&room=…`. */
export function inviteLink(invite: Invite): string {
  const query = new URLSearchParams({ server: invite.server, room: invite.room });
  return `confab://join?${query.toString()}`;
}

/** The same room for someone with only a browser: the server's own page. */
export function browserLink(invite: Invite): string | null {
  const match = /^(wss?):\/\/([^/]+)\//i.exec(invite.server);
  if (!match) return null;
  const scheme = match[1]?.toLowerCase() === "wss" ? "https" : "http";
  return `${scheme}://${match[2]}/?${new URLSearchParams({ room: invite.room }).toString()}`;
}

/** Reads an invite pasted or opened: the app's link, or a browser link to a server's page.
 * Null when the text is neither. */
export function parseInvite(text: string): Invite | null {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return null;
  }
  const room = url.searchParams.get("room")?.trim();
  if (!room) return null;
  if (url.protocol === "confab:") {
    const server = url.searchParams.get("server")?.trim();
    return server && !serverProblem(server) ? { server, room } : null;
  }
  if (url.protocol === "http:" || url.protocol === "https:") {
    return { server: `${url.protocol === "https:" ? "wss" : "ws"}://${url.host}/ws`, room };
  }
  return null;
}
