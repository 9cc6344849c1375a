// What the user can do: each action calls the backend and records in the store what the
// screen should show meanwhile. Failures become errors shown where the action was taken.

import type { Backend } from "./backend";
import { errorCode, errorText } from "./backend";
import type { ErrorArea, Store } from "./store";
import { ROOM, contactKey } from "./store";
import type { Invite } from "./format";
import { inviteLink } from "./format";
import type { ConnectionFinding, PeerCommand, Settings } from "./types";

/** How often peers' statistics (RTT, candidate type) are asked for. */
const STATS_EVERY_MS = 3000;

export class Actions {
  /** Where accepted files go. */
  downloads = "";
  private historyAsked = new Set<string>();
  /** Server, room and name of the last connect. */
  private joinedAs: string | null = null;
  private statsTimer: ReturnType<typeof setInterval> | null = null;

  constructor(
    readonly store: Store,
    readonly backend: Backend,
    readonly openLink: (url: string) => void = (url) => void backend.openUrl(url).catch(() => undefined),
  ) {}

  async send(command: PeerCommand, area: ErrorArea = "general"): Promise<boolean> {
    try {
      await this.backend.send(command);
      return true;
    } catch (error) {
      this.store.showError({ area, code: errorCode(error), message: errorText(error) });
      return false;
    }
  }

  // ----- connection -----

  async connect(): Promise<void> {
    const { server, room, name, password } = this.store.state.settings;
    const target = JSON.stringify([server, room, name]);
    if (this.joinedAs !== null && this.joinedAs !== target) {
      // Another room, server or name: the core starts afresh, and so do the list and the
      // room's conversation (the new room's history comes once joined).
      this.store.state.peers.clear();
      this.store.clearRoomConversation();
      this.store.touch("peers");
    }
    this.joinedAs = target;
    this.store.dismissErrors("connection");
    this.historyAsked.clear();
    await this.send({ cmd: "connect", server, room, name, ...(password ? { password } : {}) }, "connection");
    this.startStats();
  }

  /** Joins again as Settings now say. Only the signaling link is closed first: peer
   * connections stay up when the room and server are the same. */
  async reconnect(): Promise<void> {
    const signaling = this.store.state.signaling;
    if (signaling !== "idle" && signaling !== "disconnected") await this.send({ cmd: "disconnect" }, "connection");
    await this.connect();
  }

  async disconnect(): Promise<void> {
    await this.send({ cmd: "disconnect" }, "connection");
  }

  /** After joining: the room's history, who is there and everyone met before. */
  async joined(): Promise<void> {
    await this.history(null);
    await this.send({ cmd: "peers" });
    await this.contacts();
  }

  /** Asks who this install has met: whoever is not in the room is listed as away. */
  async contacts(): Promise<void> {
    await this.send({ cmd: "contacts" });
  }

  /** A conversation's history: the room's (`null`), a present peer's or an away contact's. */
  async history(conversation: string | null): Promise<void> {
    const key = conversation ?? ROOM;
    if (this.historyAsked.has(key)) return;
    this.historyAsked.add(key);
    const contact = conversation === null ? null : contactKey(conversation);
    if (conversation === null) await this.send({ cmd: "history" });
    else if (contact !== null) await this.send({ cmd: "history", key: contact });
    else await this.send({ cmd: "history", peer: conversation });
  }

  private startStats(): void {
    if (this.statsTimer !== null) return;
    this.statsTimer = setInterval(() => {
      const connected = [...this.store.state.peers.values()].some((p) => p.state === "connected");
      if (connected) void this.backend.send({ cmd: "stats" }).catch(() => undefined);
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
    this.store.startCalling();
    const ok = await this.send(peer ? { cmd: "call", peers: [peer] } : { cmd: "call" }, "call");
    if (ok) await this.mutedForPushToTalk();
    else this.store.endCall();
  }

  /** Invites `peer` (or everyone not in it yet) into the call under way. */
  async addToCall(peer: string | null): Promise<void> {
    this.store.dismissErrors("call");
    await this.send(peer ? { cmd: "call", peers: [peer] } : { cmd: "call" }, "call");
  }

  async accept(): Promise<void> {
    const incoming = this.store.state.incoming;
    if (!incoming) return;
    this.store.clearIncoming();
    this.store.startCalling();
    if (await this.send({ cmd: "accept-call", call: incoming.call }, "call")) await this.mutedForPushToTalk();
  }

  async decline(): Promise<void> {
    const incoming = this.store.state.incoming;
    if (!incoming) return;
    this.store.clearIncoming();
    await this.send({ cmd: "decline-call", call: incoming.call }, "call");
  }

  async hangup(): Promise<void> {
    await this.send({ cmd: "hangup" }, "call");
    this.store.endCall();
  }

  async toggleMute(): Promise<void> {
    await this.setMuted(!this.store.state.call.muted);
  }

  async setMuted(muted: boolean): Promise<void> {
    if (await this.send({ cmd: "mute", muted }, "call")) this.store.setMuted(muted);
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

  /** With push-to-talk, a call starts with the microphone muted until the key is held. */
  private async mutedForPushToTalk(): Promise<void> {
    if (this.store.state.settings.push_to_talk) await this.setMuted(true);
  }

  /** Sets how loud a peer plays here, and keeps it for that peer's key. */
  async setVolume(peer: string, volume: number): Promise<void> {
    this.store.setVolume(peer, volume);
    if (!(await this.send({ cmd: "volume", peer, volume }, "call"))) return;
    const key = this.store.state.peers.get(peer)?.fingerprint;
    if (!key) return;
    const volumes = { ...this.store.state.settings.volumes };
    if (volume === 1) delete volumes[key];
    else volumes[key] = volume;
    await this.saveSettings({ ...this.store.state.settings, volumes });
  }

  /** A peer's key became known: the volume kept for that key applies to it again. */
  async restoreVolume(peer: string, key: string): Promise<void> {
    const volume = this.store.state.settings.volumes[key];
    if (volume === undefined) return;
    this.store.setVolume(peer, volume);
    await this.send({ cmd: "volume", peer, volume }, "call");
  }

  // ----- audio devices -----

  async refreshDevices(): Promise<void> {
    this.store.dismissErrors("audio");
    await this.send({ cmd: "devices" }, "audio");
  }

  async setAudio(input: string, output: string): Promise<void> {
    this.store.dismissErrors("audio");
    await this.send({ cmd: "set-audio", input, output }, "audio");
  }

  /** Switches the microphone's processing, and keeps the choice for the next start. */
  async setProcessing(noiseSuppression: boolean, echoCancellation: boolean): Promise<void> {
    const sent = await this.send({ cmd: "set-audio", noise_suppression: noiseSuppression, echo_cancellation: echoCancellation }, "audio");
    if (sent) await this.saveSettings({ ...this.store.state.settings, noise_suppression: noiseSuppression, echo_cancellation: echoCancellation });
  }

  /** The microphone meter of Settings: opens the microphone outside a call, or stops. */
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

  /** Joins the room an opened invite names, with the room's password if it has one (never
   * in the link). The settings keep it, as if typed in Settings. */
  async joinInvite(invite: Invite, password: string): Promise<void> {
    const settings = { ...this.store.state.settings, server: invite.server, room: invite.room, password };
    this.store.clearInvite();
    if (!(await this.saveSettings(settings))) return;
    this.store.open("room");
    await this.reconnect();
  }

  /** The room's invite: the server others can reach (a hosted one's network address
   * rather than this computer's loopback one), with its QR code. */
  async invite(): Promise<{ invite: Invite; qr: string | null } | null> {
    const state = this.store.state;
    let server = state.settings.server;
    const local = /^wss?:\/\/(127\.|localhost|\[::1\])/i.test(server);
    if (local && state.host.running && state.host.urls.length) server = state.host.urls[0] ?? server;
    const invite = { server, room: state.room ?? state.settings.room };
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
