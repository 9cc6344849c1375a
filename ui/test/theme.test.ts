import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

// The test runs from the frontend's folder (npm test).
const css = readFileSync(join(process.cwd(), "src", "styles.css"), "utf8");

/** The custom properties a block of the stylesheet sets to a colour. */
function colours(block: string): string[] {
  return [...block.matchAll(/(--[\w-]+):\s*(#[0-9a-f]{3,8}|rgba?\([^)]*\)|hsl\([^)]*\))/gi)].map((m) => m[1] ?? "").sort();
}

describe("theme", () => {
  it("follows the system's dark theme for every colour the light one sets", () => {
    const light = css.slice(css.indexOf(":root {"), css.indexOf("}", css.indexOf(":root {")));
    const darkStart = css.indexOf("@media (prefers-color-scheme: dark)");
    expect(darkStart).toBeGreaterThan(0);
    const dark = css.slice(darkStart, css.indexOf("}\n}", darkStart));
    expect(colours(light).length).toBeGreaterThan(10);
    expect(colours(dark)).toEqual(colours(light));
    expect(light).toContain("color-scheme: light dark");
  });

  it("paints surfaces with the theme's colours, not fixed light ones", () => {
    const rules = css.slice(css.indexOf("}\n}", css.indexOf("@media (prefers-color-scheme: dark)")));
    // White stays only where it must: text on coloured buttons and bubbles, the QR code.
    for (const fixed of ["#eef0f5", "#f0f2f6", "#fdf3e1", "#fdeaea", "#f4f5f8"]) expect(rules).not.toContain(fixed);
    expect(rules.match(/background: #fff/g) ?? []).toHaveLength(1);
  });
});
