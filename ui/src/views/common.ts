// Pieces several views share: avatars, level meters, error lines, peer state words, the
// servers found on the network.

import type { Actions } from "../actions";
import { h } from "../dom";
import { hue, initials, meterPercent } from "../format";
import type { ErrorArea, Peer, Store } from "../store";
import type { FoundServer } from "../types";

export function avatar(name: string, small = false): HTMLElement {
  return h(
    "span",
    { class: small ? "avatar small" : "avatar", style: `--hue:${hue(name)}`, "aria-hidden": "true" },
    initials(name),
  );
}

/** A level meter; `data-level` names whose level it shows ("" for the own microphone). */
export function meter(key: string, label: string, dbfs: number | undefined): HTMLElement {
  const percent = meterPercent(dbfs);
  return h(
    "div",
    {
      class: "meter",
      role: "meter",
      "aria-label": label,
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": percent,
      "data-level": key,
    },
    h("div", { class: "meter-fill", style: `width:${percent}%` }),
  );
}

/** Moves every meter on the page to the store's levels, without redrawing anything else. */
export function updateMeters(root: ParentNode, store: Store): void {
  for (const el of root.querySelectorAll<HTMLElement>("[data-level]")) {
    const percent = meterPercent(store.callState().levels.get(el.dataset.level ?? ""));
    el.setAttribute("aria-valuenow", String(percent));
    const fill = el.firstElementChild as HTMLElement | null;
    if (fill) fill.style.width = `${percent}%`;
  }
}

/** The errors of one area, each with a dismiss button; empty when none. */
export function errorList(store: Store, area: ErrorArea): HTMLElement | null {
  const errors = store.errorsIn(area);
  if (!errors.length) return null;
  return h(
    "div",
    { class: "errors", role: "alert" },
    errors.map((e) =>
      h(
        "p",
        { class: "error", "data-code": e.code },
        h("span", {}, e.message),
        h("button", { class: "link", type: "button", "aria-label": "Dismiss", onclick: () => store.dismissErrors(area) }, "×"),
      ),
    ),
  );
}

/** The connection state in words, with the candidate type once known. */
export function peerStateText(peer: Peer): string {
  switch (peer.state) {
    case "connected":
      return peer.candidate ? `connected ${pathWords(peer)}` : "connected";
    case "new":
    case "connecting":
      return "connecting…";
    case "disconnected":
      return "connection interrupted";
    case "failed":
      return "could not connect";
    case "closed":
      return "left";
  }
}

/** How the connection goes, in a user's words: the path's kind is the stats' view of both ends. */
function pathWords(peer: Peer): string {
  const over = peer.transport === "tcp" ? " over TCP" : peer.transport === "tls" ? " over TLS" : "";
  switch (peer.candidate) {
    case "host":
      return "directly on the local network";
    case "srflx":
    case "prflx":
      return "directly over the internet";
    case "relay":
      return `through a relay server${over}`;
    default:
      return `via ${peer.candidate}`;
  }
}

export function rttText(peer: Peer): string {
  const parts = [`${peer.name}: ${peerStateText(peer)}`];
  if (peer.rttMs !== undefined) parts.push(`round trip ${peer.rttMs.toFixed(1)} ms`);
  if (peer.pair) parts.push(`path: ${peer.pair.local} ↔ ${peer.pair.remote}`);
  else if (peer.candidate) parts.push(`path: ${peer.candidate}`);
  return parts.join(" · ");
}

/** "Ada's server, 2 in lobby": a server found on the network, in a line. */
export function foundServerText(server: FoundServer): string {
  const busiest = server.rooms[0];
  if (busiest && busiest.people > 0) return `${server.name}, ${busiest.people} in ${busiest.room}`;
  return server.people > 0 ? `${server.name}, ${server.people} connected` : `${server.name}, nobody in yet`;
}

/** The servers found on the local network, each a button that `pick`s it, and a way to
 * look again. */
export function foundServers(store: Store, actions: Actions, pick: (server: FoundServer) => void): HTMLElement {
  const found = store.state.found;
  const again = h("button", { type: "button", "data-action": "discover", disabled: found === "looking", onclick: () => void actions.discover() }, found === "looking" ? "Looking…" : "Look again");
  const list =
    found === null || found === "looking"
      ? null
      : found.length
        ? h(
            "ul",
            { class: "found-servers" },
            found.map((server) =>
              h("li", {}, h("button", { type: "button", "data-found": server.url, title: server.url, onclick: () => pick(server) }, foundServerText(server))),
            ),
          )
        : h("p", { class: "hint" }, "No server announced on this network.");
  return h("div", { class: "found", "aria-live": "polite" }, h("span", { class: "label" }, "On your network"), list, again);
}

/** A Copy button for `text`; it says whether the copy worked, then reads Copy again. */
export function copyButton(actions: Actions, text: string, label: string): HTMLElement {
  const button = h("button", { type: "button", class: "small", "aria-label": `Copy ${label}` }, "Copy");
  button.addEventListener("click", () => {
    void actions.copy(text).then((ok) => {
      button.textContent = ok ? "Copied" : "Copy failed";
      setTimeout(() => (button.textContent = "Copy"), 1500);
    });
  });
  return button;
}
