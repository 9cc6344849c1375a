// The backend inside the desktop app: commands through `invoke`, ordinary events from the
// `peer-event` global event, high-rate ones (levels, progress) from an ipc Channel.

import { Channel, invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";

import type { Backend } from "./backend";
import type { Boot, ConnectionFinding, FoundServer, HostState, PeerCommand, PeerEvent, Settings } from "./types";

/** A core event as the shell sends it: with its room's id. */
type RoomEvent = PeerEvent & { room_id: string };

export function isTauri(): boolean {
  return typeof window !== "undefined" && "__TAURI_INTERNALS__" in window;
}

export class TauriBackend implements Backend {
  async attach(onEvent: (event: PeerEvent, room: string) => void, onInvite: (link: string) => void, onTalkKey?: (held: boolean) => void): Promise<Boot> {
    // The shell adds the room's id to each event (src-tauri/src/window.rs).
    const deliver = ({ room_id, ...event }: RoomEvent) => onEvent(event as PeerEvent, room_id);
    await listen<RoomEvent>("peer-event", (message) => deliver(message.payload));
    await listen<string>("invite-opened", (message) => onInvite(message.payload));
    if (onTalkKey) await listen<boolean>("talk-key", (message) => onTalkKey(message.payload));
    const streams = new Channel<RoomEvent>();
    streams.onmessage = deliver;
    return invoke<Boot>("attach", { streams });
  }

  send(command: PeerCommand, room?: string): Promise<void> {
    return invoke("peer_command", { command, room: room ?? null });
  }

  saveSettings(settings: Settings): Promise<Settings> {
    return invoke<Settings>("settings_set", { settings });
  }

  hostStart(): Promise<HostState> {
    return invoke<HostState>("host_start");
  }

  hostStop(): Promise<HostState> {
    return invoke<HostState>("host_stop");
  }

  hostState(): Promise<HostState> {
    return invoke<HostState>("host_state");
  }

  inviteQr(link: string): Promise<string> {
    return invoke<string>("invite_qr", { link });
  }

  discoverServers(): Promise<FoundServer[]> {
    return invoke<FoundServer[]>("discover_servers");
  }

  connectionTest(server: string, iceServers: string[]): Promise<ConnectionFinding[]> {
    return invoke<ConnectionFinding[]>("connection_test", { server, iceServers });
  }

  async notify(title: string, body: string): Promise<void> {
    await invoke<boolean>("notify", { title, body });
  }

  talkShortcut(enabled: boolean): Promise<string | null> {
    return invoke<string | null>("talk_shortcut", { enabled });
  }

  chooseFile(): Promise<string | null> {
    return invoke("choose_file");
  }

  openUrl(url: string): Promise<void> {
    return invoke("open_url", { url });
  }
}
