// Every `log` event of the core, filtered by level and by peer, with Clear.

import { fill, h } from "../dom";
import { formatClock } from "../format";
import type { LogLine, Store } from "../store";
import type { LogLevel } from "../types";

const LEVELS: LogLevel[] = ["debug", "info", "warn", "error"];
/** Lines drawn at once; the newest are the ones shown. */
const SHOWN = 1500;

export function filterLogs(lines: LogLine[], minLevel: LogLevel, peer: string): LogLine[] {
  const min = LEVELS.indexOf(minLevel);
  return lines.filter((l) => LEVELS.indexOf(l.level) >= min && (peer === "" || l.peer === peer));
}

/** One line as is; a multi-line one (an SDP) folded under its first line. */
function logText(msg: string): HTMLElement {
  const newline = msg.indexOf("\n");
  if (newline < 0) return h("span", { class: "line" }, msg);
  return h(
    "details",
    { class: "line" },
    h("summary", {}, msg.slice(0, newline)),
    h("pre", {}, msg.slice(newline + 1)),
  );
}

export class LogsView {
  readonly el = h("section", { class: "logs", "aria-label": "Logs" });
  private readonly level = h(
    "select",
    { "aria-label": "Lowest level shown" },
    LEVELS.map((l) => h("option", { value: l }, `${l} and above`)),
  );
  private readonly peer = h("select", { "aria-label": "Peer" });
  private readonly table = h("ol", { class: "log-lines" });
  private readonly count = h("span", { class: "sub" });
  private drawn = "";

  constructor(private readonly store: Store) {
    this.level.value = "debug";
    this.level.addEventListener("change", () => this.redraw());
    this.peer.addEventListener("change", () => this.redraw());
    fill(
      this.el,
      h(
        "header",
        { class: "view-header" },
        h("h1", {}, "Logs"),
        h("label", {}, "Level ", this.level),
        h("label", {}, "Peer ", this.peer),
        this.count,
        h("button", { type: "button", "data-action": "clear-logs", onclick: () => store.clearLogs() }, "Clear"),
      ),
      this.table,
    );
  }

  update(): void {
    const key = `${this.store.rev("logs")}:${this.store.rev("peers")}`;
    if (key === this.drawn) return;
    this.drawn = key;
    this.redraw();
  }

  private redraw(): void {
    const s = this.store.state;
    const peers = new Set<string>(s.logs.flatMap((l) => (l.peer ? [l.peer] : [])));
    for (const id of s.peers.keys()) peers.add(id);
    const chosen = this.peer.value;
    fill(
      this.peer,
      h("option", { value: "" }, "all peers"),
      [...peers].map((id) => h("option", { value: id }, `${this.store.peerName(id)} (${id})`)),
    );
    this.peer.value = peers.has(chosen) ? chosen : "";
    const lines = filterLogs(s.logs, this.level.value as LogLevel, this.peer.value);
    this.count.textContent = `${lines.length} of ${s.logs.length} lines`;
    const atBottom = this.table.scrollHeight - this.table.scrollTop - this.table.clientHeight < 40;
    fill(
      this.table,
      lines.slice(-SHOWN).map((l) =>
        h(
          "li",
          { class: `log ${l.level}` },
          h("time", {}, formatClock(l.ts)),
          h("span", { class: "level" }, l.level),
          h("span", { class: "peer" }, l.peer ? this.store.peerName(l.peer) : ""),
          logText(l.msg),
        ),
      ),
    );
    if (atBottom) this.table.scrollTop = this.table.scrollHeight;
  }
}
