// What the user can do: each action calls the backend and records in the store what the
// screen should show meanwhile. Failures become errors shown where the action was taken.

import type { Backend } from "./backend";
import { errorCode, errorText } from "./backend";
import type { ErrorArea, Store } from "./store";
import { ROOM, contactKey } from "./store";
import type { Invite } from "./format";
import { inviteLink } from "./format";
import type { ConnectionFinding, PeerCommand, RoomSettings, Settings } from "./types";

/** How often peers' statistics (RTT, candidate type) are asked for. */
const STATS_EVERY_MS = 3000;

export class Actions {
  /** Where accepted files go. */
  downloads = "";
  /** Conversations whose history was asked for, as `ROOM-ID CONVERSATION`. */
  private historyAsked = new Set<string>();
  /** The name each room was last joined under, by room id. */
  private joinedAs = new Map<string, string>();
  private statsTimer: ReturnType<typeof setInterval> | null = null;

  constructor(
    readonly store: Store,
    readonly backend: Backend,
    readonly openLink: (url: string) => void = (url) => void backend.openUrl(url).catch(() => undefined),
  ) {}

  /** A command for a room's peer (the room on screen unless named); a failure is shown
   * in `area`, about that room. */
  async send(command: PeerCommand, area: ErrorArea = "general", room: string = this.store.state.current): Promise<boolean> {
    return this.deliver(command, area, room);
  }

  /** A command about no room in particular: the devices (`set-audio` reaches every room's peer). */
  private sendAnywhere(command: PeerCommand, area: ErrorArea): Promise<boolean> {
    return this.deliver(command, area, undefined);
  }

  /** Hands a command to the backend for `room` (none: no room in particular); a refusal is
   * shown in `area`, about that room. */
  private async deliver(command: PeerCommand, area: ErrorArea, room: string | undefined): Promise<boolean> {
    try {
      await this.backend.send(command, room);
      return true;
    } catch (error) {
      this.store.showError({ area, code: errorCode(error), message: errorText(error), room });
      return false;
    }
  }

  // ----- rooms and connection -----

  /** Joins every room in Settings. */
  async connectAll(): Promise<void> {
    for (const room of this.store.state.settings.rooms) await this.connect(room.id);
  }

  /** Joins a room in Settings (the one on screen unless named) as they now say. */
  async connect(id: string = this.store.state.current): Promise<void> {
    const joined = this.store.state.settings.rooms.find((r) => r.id === id);
    if (!joined) return;
    const { server, room, password } = joined;
    const name = this.store.state.settings.name;
    const before = this.joinedAs.get(id);
    if (before !== undefined && before !== name) {
      // Under another name the room's peer starts afresh, and so does its list.
      this.store.state.roomState(id).peers.clear();
      this.store.touch("peers");
    }
    this.joinedAs.set(id, name);
    this.store.dismissErrors("connection", id);
    for (const key of [...this.historyAsked]) if (key.startsWith(`${id} `)) this.historyAsked.delete(key);
    await this.send({ cmd: "connect", server, room, name, ...(password ? { password } : {}) }, "connection", id);
    this.startStats();
  }

  /** Joins a room again as Settings now say. Only the signaling link is closed first: peer
   * connections stay up. */
  async reconnect(id: string = this.store.state.current): Promise<void> {
    const signaling = this.store.state.roomState(id).signaling;
    if (signaling !== "idle" && signaling !== "disconnected") await this.send({ cmd: "disconnect" }, "connection", id);
    await this.connect(id);
  }

  async disconnect(): Promise<void> {
    await this.send({ cmd: "disconnect" }, "connection");
  }

  /** Joins `room` on `server` beside the rooms the app is in, and shows it; a room already
   * in Settings is shown and joined again with this password. */
  async joinRoom(server: string, room: string, password: string): Promise<boolean> {
    const settings = this.store.state.settings;
    const existing = settings.rooms.find((r) => r.server === server && r.room === room);
    const joined: RoomSettings = { id: existing?.id ?? newRoomId(settings.rooms), server, room, password };
    const rooms = existing ? settings.rooms.map((r) => (r.id === joined.id ? joined : r)) : [...settings.rooms, joined];
    if (!(await this.saveSettings({ ...settings, rooms }))) return false;
    this.store.switchRoom(joined.id);
    await (existing ? this.reconnect(joined.id) : this.connect(joined.id));
    return true;
  }

  /** Leaves one room (its peer says goodbye); the others stay as they are. */
  async leaveRoom(id: string): Promise<void> {
    const call = this.store.state.rooms.get(id)?.call;
    if (call && call.phase !== "idle") await this.hangup(id);
    const settings = this.store.state.settings;
    if (await this.saveSettings({ ...settings, rooms: settings.rooms.filter((r) => r.id !== id) })) {
      this.joinedAs.delete(id);
      this.store.forgetRoom(id);
    }
  }

  /** After joining a room: its history, who is there and everyone met before. */
  async joined(room: string): Promise<void> {
    await this.history(null, room);
    await this.send({ cmd: "peers" }, "general", room);
    await this.contacts(room);
  }

  /** Asks who this install has met: whoever is not in the room is listed as away. */
  async contacts(room: string = this.store.state.current): Promise<void> {
    await this.send({ cmd: "contacts" }, "general", room);
  }

  /** A conversation's history: the room's (`null`), a present peer's or an away contact's. */
  async history(conversation: string | null, room: string = this.store.state.current): Promise<void> {
    const asked = `${room} ${conversation ?? ROOM}`;
    if (this.historyAsked.has(asked)) return;
    this.historyAsked.add(asked);
    const contact = conversation === null ? null : contactKey(conversation);
    if (conversation === null) await this.send({ cmd: "history" }, "general", room);
    else if (contact !== null) await this.send({ cmd: "history", key: contact }, "general", room);
    else await this.send({ cmd: "history", peer: conversation }, "general", room);
  }

  /** Asks each room with someone connected for its paths' statistics, every few seconds. */
  private startStats(): void {
    if (this.statsTimer !== null) return;
    this.statsTimer = setInterval(() => {
      for (const [id, room] of this.store.state.rooms) {
        const connected = [...room.peers.values()].some((p) => p.state === "connected");
        if (connected) void this.backend.send({ cmd: "stats" }, id).catch(() => undefined);
      }
    }, STATS_EVERY_MS);
  }

  // ----- chat -----

  openConversation(key: string): void {
    this.store.open(key);
    if (key !== ROOM) void this.history(key);
  }

  async chat(text: string, to: string | null): Promise<void> {
    if (!text.trim()) return;
    this.store.dismissErrors("chat");
    const message = this.store.addOwnMessage(text, to);
    const away = to === null ? null : contactKey(to);
    const command: PeerCommand =
      to === null
        ? { cmd: "chat", text }
        : away !== null
          ? // Someone away: the message waits for them, by key.
            { cmd: "chat", text, to_key: away }
          : { cmd: "chat", text, to };
    const sent = await this.send(command, "chat");
    if (!sent) this.store.failOwnMessage(message);
  }

  // ----- calls -----

  async call(peer: string | null): Promise<void> {
    this.store.dismissErrors("call");
    await this.leaveOtherCall();
    this.store.startCalling();
    const room = this.store.state.current;
    await this.mutedBeforeCall(room);
    const ok = await this.send(peer ? { cmd: "call", peers: [peer] } : { cmd: "call" }, "call", room);
    await this.mutedForPushToTalk(ok, room);
    if (!ok) this.store.endCall();
  }

  /** The app is in one call at a time: a call elsewhere ends before one starts here. */
  private async leaveOtherCall(here: string = this.store.state.current): Promise<void> {
    const other = this.store.callRoom();
    if (other !== null && other !== here) await this.hangup(other);
  }

  /** Invites `peer` (or everyone not in it yet) into the call under way. */
  async addToCall(peer: string | null): Promise<void> {
    this.store.dismissErrors("call");
    await this.send(peer ? { cmd: "call", peers: [peer] } : { cmd: "call" }, "call", this.store.callRoom() ?? undefined);
  }

  /** Answers the call ringing here, in whichever room it rings. */
  async accept(): Promise<void> {
    const ringing = this.store.ringing();
    if (!ringing) return;
    const { room, incoming } = ringing;
    this.store.clearIncoming(room);
    await this.leaveOtherCall(room);
    this.store.startCalling(room);
    await this.mutedBeforeCall(room);
    const ok = await this.send({ cmd: "accept-call", call: incoming.call }, "call", room);
    await this.mutedForPushToTalk(ok, room);
  }

  async decline(): Promise<void> {
    const ringing = this.store.ringing();
    if (!ringing) return;
    this.store.clearIncoming(ringing.room);
    await this.send({ cmd: "decline-call", call: ringing.incoming.call }, "call", ringing.room);
  }

  /** Ends the call (in the room it is in, unless named). */
  async hangup(room: string = this.store.callRoom() ?? this.store.state.current): Promise<void> {
    await this.send({ cmd: "hangup" }, "call", room);
    this.store.endCall(room);
  }

  async toggleMute(): Promise<void> {
    await this.setMuted(!this.store.callState().call.muted);
  }

  /** Mutes or unmutes the microphone in the call, wherever it is. */
  async setMuted(muted: boolean): Promise<void> {
    const room = this.store.callRoom() ?? this.store.state.current;
    if (await this.send({ cmd: "mute", muted }, "call", room)) this.store.setMuted(muted, room);
  }

  /** Push-to-talk on or off, saved; the desktop-wide talk shortcut is grabbed with it. */
  async setPushToTalk(on: boolean): Promise<void> {
    if (await this.saveSettings({ ...this.store.state.settings, push_to_talk: on })) await this.grabTalkShortcut();
  }

  /** Holds the desktop-wide talk shortcut while push-to-talk is on, and lets it go when not. */
  async grabTalkShortcut(): Promise<void> {
    try {
      this.store.setTalkShortcut(await this.backend.talkShortcut(this.store.state.settings.push_to_talk));
    } catch {
      // The window's own key still works.
      this.store.setTalkShortcut(null);
    }
  }

  /**
   * With push-to-talk, a call starts with the microphone muted until the key is held: the
   * core is told before the call starts (it keeps a mute given outside a call), so that
   * not a frame is sent before the page hears back.
   */
  private async mutedBeforeCall(room: string): Promise<void> {
    if (this.store.state.settings.push_to_talk) await this.send({ cmd: "mute", muted: true }, "call", room);
  }

  /** Once the call started, the window shows it muted; a call that did not start leaves the microphone as it was. */
  private async mutedForPushToTalk(started: boolean, room: string): Promise<void> {
    if (!this.store.state.settings.push_to_talk) return;
    if (started) await this.setMuted(true);
    else await this.send({ cmd: "mute", muted: false }, "call", room);
  }

  /** Sets how loud a peer of the call plays here, and keeps it for that peer's key. */
  async setVolume(peer: string, volume: number): Promise<void> {
    const room = this.store.callRoom() ?? this.store.state.current;
    this.store.setVolume(peer, volume, room);
    if (!(await this.send({ cmd: "volume", peer, volume }, "call", room))) return;
    const key = this.store.state.roomState(room).peers.get(peer)?.fingerprint;
    if (!key) return;
    const volumes = { ...this.store.state.settings.volumes };
    if (volume === 1) delete volumes[key];
    else volumes[key] = volume;
    await this.saveSettings({ ...this.store.state.settings, volumes });
  }

  /** A peer's key became known in a room: the volume kept for that key applies to it again. */
  async restoreVolume(peer: string, key: string, room: string): Promise<void> {
    const volume = this.store.state.settings.volumes[key];
    if (volume === undefined) return;
    this.store.setVolume(peer, volume, room);
    await this.send({ cmd: "volume", peer, volume }, "call", room);
  }

  // ----- audio devices -----

  async refreshDevices(): Promise<void> {
    this.store.dismissErrors("audio");
    await this.sendAnywhere({ cmd: "devices" }, "audio");
  }

  async setAudio(input: string, output: string): Promise<void> {
    this.store.dismissErrors("audio");
    await this.sendAnywhere({ cmd: "set-audio", input, output }, "audio");
  }

  /** Switches the microphone's processing, and keeps the choice for the next start. */
  async setProcessing(noiseSuppression: boolean, echoCancellation: boolean): Promise<void> {
    const sent = await this.sendAnywhere({ cmd: "set-audio", noise_suppression: noiseSuppression, echo_cancellation: echoCancellation }, "audio");
    if (sent) await this.saveSettings({ ...this.store.state.settings, noise_suppression: noiseSuppression, echo_cancellation: echoCancellation });
  }

  /** The microphone meter of Settings: opens the microphone outside a call, or stops. The
   * room on screen's peer opens it, so its levels are the ones the meter reads. */
  async micTest(on: boolean): Promise<void> {
    if (!on) this.store.state.levels.delete("");
    await this.send({ cmd: "mic-test", on }, "audio");
  }

  // ----- files and trust -----

  async sendFile(to: string, path: string): Promise<void> {
    this.store.dismissErrors("files");
    await this.send({ cmd: "send-file", to, path: path.trim() }, "files");
  }

  /** Picks a file with the desktop's chooser and offers it to `to`; nothing if cancelled. */
  async chooseAndSendFile(to: string): Promise<void> {
    let path: string | null;
    try {
      path = await this.backend.chooseFile();
    } catch (error) {
      this.store.showError({ area: "files", code: "chooser", message: `The file chooser failed: ${errorText(error)}` });
      return;
    }
    if (path) await this.sendFile(to, path);
  }

  async acceptFile(file: string): Promise<void> {
    if (!this.downloads) {
      this.store.showError({ area: "files", code: "no-folder", message: "There is no Downloads folder to save the file in." });
      return;
    }
    await this.send({ cmd: "accept-file", file, dir: this.downloads }, "files");
  }

  async rejectFile(file: string): Promise<void> {
    const transfer = this.store.state.transfers.get(file);
    if (await this.send({ cmd: "reject-file", file }, "files") && transfer) {
      transfer.status = "rejected";
      this.store.touch("files");
    }
  }

  async showSafetyCode(peer: string): Promise<void> {
    this.store.verify(peer);
    await this.send({ cmd: "safety-code", peer });
  }

  async markVerified(peer: string): Promise<void> {
    await this.send({ cmd: "verify", peer });
  }

  // ----- settings and the hosted server -----

  async saveSettings(settings: Settings): Promise<boolean> {
    try {
      this.store.setSettings(await this.backend.saveSettings(settings));
      this.store.dismissErrors("settings");
      return true;
    } catch (error) {
      this.store.showError({ area: "settings", code: "settings", message: errorText(error) });
      return false;
    }
  }

  /** Saves Settings, then joins again each room the change needs to: every room when the
   * name or the STUN/TURN servers changed (its peer is built with them), else those not
   * connected now (a server just hosted here, say). */
  async saveAndRejoin(settings: Settings): Promise<boolean> {
    const before = this.store.state.settings;
    const rebuilt = before.name !== settings.name || before.ice_servers.join("\n") !== settings.ice_servers.join("\n");
    if (!(await this.saveSettings(settings))) return false;
    for (const room of settings.rooms) {
      if (rebuilt || this.store.state.roomState(room.id).signaling !== "connected") await this.reconnect(room.id);
    }
    return true;
  }

  /** Joins the room an opened invite names, beside the others, with the room's password
   * if it has one (never in the link). Settings keep it, as a room joined there. */
  async joinInvite(invite: Invite, password: string): Promise<void> {
    this.store.clearInvite();
    await this.joinRoom(invite.server, invite.room, password);
  }

  /** The invite of the room on screen: the server others can reach (a hosted one's network
   * address rather than this computer's loopback one), with its QR code. */
  async invite(): Promise<{ invite: Invite; qr: string | null } | null> {
    const state = this.store.state;
    const joined = state.settings.rooms.find((r) => r.id === state.current);
    if (!joined) return null;
    let server = joined.server;
    const local = /^wss?:\/\/(127\.|localhost|\[::1\])/i.test(server);
    if (local && state.host.running && state.host.urls.length) server = state.host.urls[0] ?? server;
    const invite = { server, room: joined.room };
    try {
      return { invite, qr: await this.backend.inviteQr(inviteLink(invite)) };
    } catch {
      // The link works without its picture.
      return { invite, qr: null };
    }
  }

  /** The connection test: its findings, or null (with the error shown) when it could not run. */
  async testConnection(server: string, iceServers: string[]): Promise<ConnectionFinding[] | null> {
    this.store.dismissErrors("settings");
    try {
      return await this.backend.connectionTest(server, iceServers);
    } catch (error) {
      this.store.showError({ area: "settings", code: errorCode(error), message: errorText(error) });
      return null;
    }
  }

  /** Looks for servers announced on the local network. */
  async discover(): Promise<void> {
    this.store.setFound("looking");
    try {
      this.store.setFound(await this.backend.discoverServers());
    } catch (error) {
      this.store.setFound([]);
      this.store.showError({ area: "settings", code: errorCode(error), message: errorText(error) });
    }
  }

  async hostStart(): Promise<boolean> {
    this.store.dismissErrors("host");
    try {
      this.store.setHost(await this.backend.hostStart());
      const host = this.store.state.settings.host;
      this.store.setSettings({ ...this.store.state.settings, host: { ...host, enabled: true } });
      return true;
    } catch (error) {
      this.store.showError({ area: "host", code: "host", message: errorText(error) });
      return false;
    }
  }

  async hostStop(): Promise<void> {
    this.store.dismissErrors("host");
    try {
      this.store.setHost(await this.backend.hostStop());
      const host = this.store.state.settings.host;
      this.store.setSettings({ ...this.store.state.settings, host: { ...host, enabled: false } });
    } catch (error) {
      this.store.showError({ area: "host", code: "host", message: errorText(error) });
    }
  }

  async refreshHost(): Promise<void> {
    try {
      this.store.setHost(await this.backend.hostState());
    } catch {
      // The next refresh tries again; the screen keeps the last known state.
    }
  }

  async copy(text: string): Promise<boolean> {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Older webviews without the async clipboard: the selection way.
      const area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      const ok = document.execCommand("copy");
      area.remove();
      return ok;
    }
  }
}

/** An id for a new room, unlike any room's in the list. */
function newRoomId(rooms: readonly RoomSettings[]): string {
  const taken = rooms.map((r) => Number(/^r(\d+)$/.exec(r.id)?.[1] ?? 0));
  return `r${Math.max(0, ...taken) + 1}`;
}
