import { describe, expect, it } from "vitest";

import {
  browserLink,
  formatBytes,
  formatRate,
  formatTimeLeft,
  iceServerProblem,
  initials,
  inviteLink,
  linkHref,
  listNames,
  meterPercent,
  parseInvite,
  serverProblem,
  splitLinks,
} from "../src/format";

describe("format", () => {
  it("finds links and leaves sentence punctuation out", () => {
    expect(splitLinks("see https://example.org/a?b=1, and www.x.org.")).toEqual([
      { text: "see " },
      { link: "https://example.org/a?b=1" },
      { text: ", and " },
      { link: "www.x.org" },
      { text: "." },
    ]);
    expect(splitLinks("no links")).toEqual([{ text: "no links" }]);
    expect(linkHref("www.x.org")).toBe("https://www.x.org");
  });

  it("lists names as a sentence does", () => {
    expect(listNames([])).toBe("");
    expect(listNames(["Ada"])).toBe("Ada");
    expect(listNames(["Ada", "Bob"])).toBe("Ada and Bob");
    expect(listNames(["Ada", "Bob", "Cy"])).toBe("Ada, Bob and Cy");
  });

  it("maps levels to meter widths", () => {
    expect(meterPercent(undefined)).toBe(0);
    expect(meterPercent(-100)).toBe(0);
    expect(meterPercent(-30)).toBe(50);
    expect(meterPercent(3)).toBe(100);
    expect(meterPercent(Number.NEGATIVE_INFINITY)).toBe(0);
  });

  it("checks servers the way the core parses them", () => {
    expect(iceServerProblem("stun:stun.example.org:3478")).toBeNull();
    expect(iceServerProblem("turn:u:p@turn.example.org:3478")).toBeNull();
    expect(iceServerProblem("turn:turn.example.org:3478")).toMatch(/user:password/);
    expect(iceServerProblem("http://x")).toMatch(/stun: or turn:/);
    expect(serverProblem("ws://10.0.0.2:8787/ws")).toBeNull();
    expect(serverProblem("http://x")).toMatch(/ws:\/\//);
    expect(serverProblem("nonsense")).toMatch(/not a server address/);
  });

  it("formats sizes and initials", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatRate(12 * 1024 * 1024)).toBe("12 MiB/s");
    expect(formatTimeLeft(4.2)).toBe("5 s left");
    expect(formatTimeLeft(150)).toBe("3 min left");
    expect(formatTimeLeft(3900)).toBe("1 h 5 min left");
    expect(formatBytes(50 * 1024 * 1024)).toBe("50 MiB");
    expect(initials("Ada Lovelace")).toBe("AL");
    expect(initials("bo")).toBe("BO");
    expect(initials("  ")).toBe("?");
  });
});

describe("invites", () => {
  it("round-trips the app's link and offers the server's page to browsers", () => {
    const invite = { server: "ws://192.0.2.1:8787/ws", room: "team talk" };
    const link = inviteLink(invite);
    expect(link).toBe("confab://join?server=ws%3A%2F%2F192.0.2.1%3A8787%2Fws&room=team+talk");
    expect(parseInvite(link)).toEqual(invite);
    const page = browserLink(invite);
    expect(page).toBe("http://192.0.2.1:8787/?room=team+talk");
    expect(parseInvite(page ?? "")).toEqual(invite);
    expect(browserLink({ server: "wss://chat.example.org/ws", room: "a" })).toBe("https://chat.example.org/?room=a");
  });

  it("refuses what is not an invite", () => {
    expect(parseInvite("hello")).toBeNull();
    expect(parseInvite("confab://join?room=a")).toBeNull();
    expect(parseInvite("confab://join?server=ftp%3A%2F%2Fx&room=a")).toBeNull();
    expect(parseInvite("http://192.0.2.1:8787/")).toBeNull();
  });
});
