// Settings: who you are, the rooms you are in and joining another, STUN/TURN, hosting a
// server, audio devices.

import type { Actions } from "../actions";
import { fill, h } from "../dom";
import { iceServerProblem, serverProblem } from "../format";
import type { Store } from "../store";
import type { Device, RoomSettings, Settings } from "../types";
import { copyButton, errorList, foundServers, meter } from "./common";

export class SettingsView {
  readonly el = h("section", { class: "settings", "aria-label": "Settings" });
  private readonly name = h("input", { type: "text", maxlength: 64, required: true, "data-field": "name" });
  private readonly server = h("input", { type: "text", required: true, "data-field": "server", placeholder: "ws://192.168.1.20:8787/ws" });
  private readonly room = h("input", { type: "text", maxlength: 64, required: true, "data-field": "room" });
  /** Servers found on the network: picking one fills the server (and its busiest room). */
  private readonly found = h("div", {});
  private readonly password = h("input", { type: "password", "data-field": "password", placeholder: "none" });
  private readonly ice = h("textarea", { rows: 3, "data-field": "ice", placeholder: "stun:stun.example.org:3478\nturn:user:secret@turn.example.org:3478" });
  private readonly port = h("input", { type: "number", min: 1, max: 65535, "data-field": "port" });
  private readonly reach = h(
    "select",
    { "data-field": "reach" },
    h("option", { value: "lan" }, "everyone on my network"),
    h("option", { value: "local" }, "this computer only"),
  );
  private readonly hostToggle = h("input", { type: "checkbox", role: "switch", "data-field": "host" });
  private readonly hostInfo = h("div", { class: "host-info", "aria-live": "polite" });
  private readonly input = h("select", { "data-field": "audio-in", "aria-label": "Microphone" });
  private readonly output = h("select", { "data-field": "audio-out", "aria-label": "Speakers" });
  private readonly audioInfo = h("div", { class: "audio-info", "aria-live": "polite" });
  private readonly noise = h("input", { type: "checkbox", "data-field": "noise-suppression" });
  private readonly echo = h("input", { type: "checkbox", "data-field": "echo-cancellation" });
  private readonly pushToTalk = h("input", { type: "checkbox", "data-field": "push-to-talk" });
  private readonly talkHint = h("p", { class: "hint", "data-talk-shortcut": "" });
  private readonly formErrors = h("div", { class: "form-errors", role: "alert" });
  /** The connection test: what works from here towards the server in the form. */
  private readonly testButton = h("button", { type: "button", "data-action": "connection-test" }, "Test the connection");
  private readonly testResults = h("ul", { class: "connection-test", "aria-live": "polite", "aria-label": "Connection test" });
  private readonly saved = h("span", { class: "saved", "aria-live": "polite" });
  /** Closes the signaling link of the room on screen only: its connected peers stay. */
  private readonly disconnect = h(
    "button",
    { type: "button", "data-action": "disconnect", title: "Leave this room's signaling server; chats and calls with connected peers go on" },
    "Disconnect from the server",
  );
  /** The rooms the app is in, each with a way to leave it. */
  private readonly roomList = h("ul", { class: "joined-rooms", "aria-label": "Your rooms" });
  private readonly joinErrors = h("div", { class: "form-errors", role: "alert" });
  private drawnRooms = "";
  /** The settings the form shows, and whether the user has edited it since. */
  private formOf: Settings | null = null;
  private dirty = false;
  private drawnHost = "";
  private drawnAudio = "";

  constructor(
    private readonly store: Store,
    private readonly actions: Actions,
  ) {
    const form = h(
      "form",
      {
        class: "settings-form",
        onsubmit: (e: Event) => (e.preventDefault(), void this.save()),
        oninput: () => (this.dirty = true),
      },
      h("header", { class: "view-header" }, h("h1", {}, "Settings")),
      h("fieldset", {}, h("legend", {}, "You"), field("Display name", this.name, "How everyone in your rooms sees you.")),
      h(
        "fieldset",
        {},
        h("legend", {}, "Network"),
        field("STUN and TURN servers", this.ice, "One per line: stun:HOST:PORT or turn:USER:PASS@HOST:PORT. Needed only across the internet."),
        h("div", { class: "row" }, this.testButton),
        this.testResults,
      ),
      h(
        "div",
        { class: "actions" },
        h("button", { class: "primary", type: "submit", "data-action": "save-settings" }, "Save and reconnect"),
        this.disconnect,
        this.saved,
      ),
      this.formErrors,
    );
    const rooms = h("fieldset", { class: "rooms-settings" }, h("legend", {}, "Your rooms"), this.roomList);
    const join = h(
      "form",
      { class: "join-form", "aria-label": "Join a room", onsubmit: (e: Event) => (e.preventDefault(), void this.join()) },
      h(
        "fieldset",
        {},
        h("legend", {}, "Join a room"),
        h("p", { class: "hint" }, "Beside the rooms you are in: each keeps its own people and conversations."),
        field("Signaling server", this.server, "The server everyone in the room connects to."),
        this.found,
        field("Room", this.room),
        field("Room password", this.password, "Optional. The first to join a room sets it."),
        h("div", { class: "actions" }, h("button", { class: "primary", type: "submit", "data-action": "join-room-submit" }, "Join")),
        this.joinErrors,
      ),
    );
    this.hostToggle.addEventListener("change", () => void this.toggleHost());
    this.testButton.addEventListener("click", () => void this.testConnection());
    this.disconnect.addEventListener("click", () => void this.actions.disconnect());
    const host = h(
      "fieldset",
      { class: "host", oninput: () => (this.dirty = true) },
      h("legend", {}, "Host a server"),
      h("label", { class: "switch" }, this.hostToggle, h("span", {}, "Host a signaling server on this computer")),
      h("div", { class: "row" }, field("Port", this.port), field("Reachable by", this.reach)),
      h("p", { class: "hint" }, "Port and reach apply when the server starts. Others join with one of the addresses below."),
      this.hostInfo,
    );
    const audio = h(
      "fieldset",
      { class: "audio" },
      h("legend", {}, "Audio"),
      h("div", { class: "row" }, field("Microphone", this.input), field("Speakers", this.output)),
      h(
        "div",
        { class: "mic-test" },
        h("span", {}, "Microphone test"),
        meter("", "Microphone test level", undefined),
      ),
      h(
        "div",
        { class: "row checks" },
        h("label", { class: "switch" }, this.noise, h("span", {}, "Noise suppression")),
        h("label", { class: "switch" }, this.echo, h("span", {}, "Echo cancellation")),
        h("label", { class: "switch" }, this.pushToTalk, h("span", {}, "Push to talk: in a call, hold Space to speak")),
      ),
      this.talkHint,
      h("button", { type: "button", "data-action": "refresh-devices", onclick: () => void this.actions.refreshDevices() }, "Find devices again"),
      this.audioInfo,
    );
    const processing = () => void this.actions.setProcessing(this.noise.checked, this.echo.checked);
    this.noise.addEventListener("change", processing);
    this.echo.addEventListener("change", processing);
    this.pushToTalk.addEventListener("change", () => void this.actions.setPushToTalk(this.pushToTalk.checked));
    this.input.addEventListener("change", () => void this.audioChanged());
    this.output.addEventListener("change", () => void this.audioChanged());
    fill(this.el, form, rooms, join, host, audio);
  }

  /** Shown: asks the core for devices, the host for fresh counts, and starts the meter. */
  shown(): void {
    void this.actions.refreshDevices();
    void this.actions.refreshHost();
    void this.actions.micTest(true);
  }

  /** Left: the microphone closes again unless a call needs it. */
  hidden(): void {
    void this.actions.micTest(false);
  }

  update(): void {
    const s = this.store;
    // What the user is typing is never overwritten by a refresh.
    if (s.state.settings !== this.formOf && !this.dirty) {
      this.formOf = s.state.settings;
      this.fillForm(s.state.settings);
    }
    this.disconnect.disabled = s.state.signaling !== "connected" && s.state.signaling !== "reconnecting";
    const roomsKey = `${s.rev("settings")}:${s.rev("connection")}:${s.state.current}`;
    if (roomsKey !== this.drawnRooms) {
      this.drawnRooms = roomsKey;
      fill(this.roomList, s.state.settings.rooms.map((r) => this.roomRow(r)));
      if (!s.state.settings.rooms.length) fill(this.roomList, h("li", { class: "sub" }, "You are in no room. Join one below."));
    }
    const hostKey = `${s.rev("settings")}:${s.rev("errors")}`;
    if (hostKey !== this.drawnHost) {
      this.drawnHost = hostKey;
      this.drawHost();
      if (s.state.found === null) void this.actions.discover();
      fill(
        this.found,
        foundServers(s, this.actions, (server) => {
          this.server.value = server.url;
          if (server.rooms[0]) this.room.value = server.rooms[0].room;
        }),
      );
      fill(this.formErrors, errorList(s, "settings"));
      fill(this.joinErrors, errorList(s, "connection"));
    }
    const audioKey = `${s.rev("audio")}:${s.rev("settings")}:${s.rev("errors")}`;
    if (audioKey !== this.drawnAudio) {
      this.drawnAudio = audioKey;
      this.drawAudio();
    }
  }

  /** Runs the connection test on the server and STUN/TURN servers in the form, as typed. */
  private async testConnection(): Promise<void> {
    const ice = this.ice.value
      .split("\n")
      .map((line) => line.trim())
      .filter(Boolean);
    this.testButton.disabled = true;
    this.testButton.textContent = "Testing…";
    fill(this.testResults);
    const findings = await this.actions.testConnection(this.server.value.trim(), ice);
    this.testButton.disabled = false;
    this.testButton.textContent = "Test the connection";
    if (!findings) {
      fill(this.formErrors, errorList(this.store, "settings"));
      return;
    }
    fill(
      this.testResults,
      findings.map((f) => {
        const [mark, kind] = f.ok === true ? ["✓", "works"] : f.ok === false ? ["✗", "fails"] : ["?", "unknown"];
        return h("li", { class: kind, "data-check": f.check }, h("span", { "aria-hidden": "true" }, mark), " ", f.words);
      }),
    );
  }

  /** A room in the list: where it is, how it is connected, and Leave. */
  private roomRow(joined: RoomSettings): HTMLElement {
    const signaling = this.store.state.rooms.get(joined.id)?.signaling ?? "idle";
    const name = this.store.roomName(joined.id);
    return h(
      "li",
      { "data-joined-room": joined.id },
      h("span", { class: "name" }, `# ${name}`),
      h("span", { class: "sub" }, ` on ${joined.server} · ${signaling === "connected" ? "connected" : signaling}`),
      h(
        "button",
        { type: "button", class: "danger", "data-action": "leave-room", "aria-label": `Leave ${name}`, onclick: () => void this.actions.leaveRoom(joined.id) },
        "Leave",
      ),
    );
  }

  private fillForm(settings: Settings): void {
    this.name.value = settings.name;
    // The join form starts from the room on screen's server, the likeliest for another room.
    const here = settings.rooms.find((r) => r.id === this.store.state.current) ?? settings.rooms[0];
    if (!this.server.value) this.server.value = here?.server ?? "";
    this.ice.value = settings.ice_servers.join("\n");
    this.port.value = String(settings.host.port);
    this.reach.value = settings.host.lan ? "lan" : "local";
  }

  private drawHost(): void {
    const host = this.store.state.host;
    this.hostToggle.checked = host.running;
    this.port.disabled = host.running;
    this.reach.disabled = host.running;
    if (!host.running) {
      fill(this.hostInfo, h("p", { class: "sub", "data-host": "stopped" }, "Not hosting."), errorList(this.store, "host"));
      return;
    }
    const local = host.local_url;
    fill(
      this.hostInfo,
      h(
        "p",
        { class: "ok", "data-host": "running" },
        `Running on port ${host.port} · ${host.peers} in rooms · ${host.connections} connected`,
      ),
      h(
        "ul",
        { class: "addresses" },
        host.urls.map((url) =>
          h(
            "li",
            {},
            h("code", {}, url),
            copyButton(this.actions, url, url),
          ),
        ),
      ),
      local && !this.store.state.settings.rooms.some((r) => r.server === local)
        ? h("button", { type: "button", "data-action": "use-hosted", onclick: () => void this.useHosted(local) }, "Connect to this server")
        : h("p", { class: "sub" }, "You are using this server."),
      errorList(this.store, "host"),
    );
  }

  private drawAudio(): void {
    const s = this.store.state;
    const devices = s.devices;
    fillDevices(this.input, devices?.inputs ?? [], s.settings.audio_in);
    fillDevices(this.output, devices?.outputs ?? [], s.settings.audio_out);
    const audio = s.audio;
    this.pushToTalk.checked = s.settings.push_to_talk;
    this.talkHint.hidden = !s.settings.push_to_talk;
    this.talkHint.textContent = s.talkShortcut
      ? `Or hold ${s.talkShortcut} anywhere on the desktop, with Confab in the background.`
      : "In this window only: the desktop does not let Confab take a key everywhere.";
    this.noise.disabled = this.echo.disabled = !audio;
    if (audio) {
      this.noise.checked = audio.noise_suppression;
      this.echo.checked = audio.echo_cancellation;
    }
    fill(
      this.audioInfo,
      devices ? null : h("p", { class: "sub" }, "Looking for devices…"),
      audio
        ? h(
            "p",
            { class: "sub", "data-audio": "in-use" },
            `In use: ${audio.input_name ?? audio.input} → ${audio.output_name ?? audio.output}`,
          )
        : null,
      errorList(this.store, "audio"),
    );
  }

  private async toggleHost(): Promise<void> {
    if (this.hostToggle.checked) {
      const settings = this.read();
      if (!settings) {
        this.hostToggle.checked = false;
        return;
      }
      this.dirty = false;
      await this.actions.saveSettings(settings);
      await this.actions.hostStart();
    } else {
      await this.actions.hostStop();
    }
  }

  /** Joins the room typed in the join form (lobby if none) on this computer's server. */
  private async useHosted(url: string): Promise<void> {
    this.server.value = url;
    if (!this.room.value.trim()) this.room.value = "lobby";
    await this.join();
  }

  /** Joins the room in the join form beside the others. */
  private async join(): Promise<void> {
    const problems: string[] = [];
    const room = this.room.value.trim();
    if (!room) problems.push("Pick a room.");
    const serverIssue = serverProblem(this.server.value);
    if (serverIssue) problems.push(serverIssue);
    if (problems.length) {
      this.store.showError({ area: "settings", code: "invalid", message: problems.join(" ") });
      fill(this.joinErrors, errorList(this.store, "settings"));
      return;
    }
    if (await this.actions.joinRoom(this.server.value.trim(), room, this.password.value)) {
      this.room.value = "";
      this.password.value = "";
    }
  }

  private async audioChanged(): Promise<void> {
    const settings = { ...this.store.state.settings, audio_in: this.input.value, audio_out: this.output.value };
    if (await this.actions.saveSettings(settings)) await this.actions.setAudio(settings.audio_in, settings.audio_out);
  }

  /** The form's settings, or null (with the problems shown) when something is wrong. */
  private read(): Settings | null {
    const problems: string[] = [];
    const name = this.name.value.trim();
    if (!name) problems.push("Pick a display name.");
    const ice = this.ice.value.split("\n").map((l) => l.trim()).filter(Boolean);
    for (const spec of ice) {
      const issue = iceServerProblem(spec);
      if (issue) problems.push(issue);
    }
    const port = Number(this.port.value);
    if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push("The port is a number from 1 to 65535.");
    if (problems.length) {
      this.store.showError({ area: "settings", code: "invalid", message: problems.join(" ") });
      return null;
    }
    return {
      ...this.store.state.settings,
      name,
      ice_servers: ice,
      host: { ...this.store.state.settings.host, port, lan: this.reach.value === "lan" },
    };
  }

  /** Saves the form; rooms rejoin where the change needs it (`Actions.saveAndRejoin`). */
  private async save(): Promise<void> {
    const settings = this.read();
    if (!settings) return;
    this.dirty = false;
    if (await this.actions.saveAndRejoin(settings)) {
      this.saved.textContent = "Saved.";
      setTimeout(() => (this.saved.textContent = ""), 2000);
    }
  }
}

function field(label: string, control: HTMLElement, hint?: string): HTMLElement {
  return h("label", { class: "field" }, h("span", { class: "label" }, label), control, hint ? h("span", { class: "hint" }, hint) : null);
}

/** The options of a device picker: the system default, each device, none. */
function fillDevices(select: HTMLSelectElement, devices: Device[], chosen: string): void {
  const options = [
    { value: "default", label: "System default" },
    ...devices.map((d) => ({ value: `device:${d.name}`, label: d.default ? `${d.name} (default)` : d.name })),
    { value: "none", label: "None" },
  ];
  if (!options.some((o) => o.value === chosen)) options.push({ value: chosen, label: chosen });
  fill(select, options.map((o) => h("option", { value: o.value }, o.label)));
  select.value = chosen;
}
