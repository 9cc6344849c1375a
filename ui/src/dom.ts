// A tiny element builder: the views build DOM nodes directly, never HTML strings, so text
// from the network can never become markup.

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | undefined | null>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = String(value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el: HTMLElement, children: (Child | Child[])[]): void {
  for (const child of children) {
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else if (typeof child === "string") el.appendChild(document.createTextNode(child));
  }
}

/**
 * The element a pointer is pressed on, until it is released. A redraw in between would
 * replace it, and the browser sends a click only when press and release meet the same
 * element: on a busy machine, or with a slow press while the views redraw for each stats
 * or level update, a click on a button would be lost. So a redraw of what holds it waits
 * for the release (and the click it makes).
 */
let pressed: Element | null = null;

interface Redraw {
  children: (Child | Child[])[];
  keepFocus: boolean;
}

/** The latest redraw of each held-back element, made once the pointer is released. */
const heldBack = new Map<HTMLElement, Redraw>();

if (typeof document !== "undefined") {
  document.addEventListener("pointerdown", (e) => (pressed = e.target instanceof Element ? e.target : null), true);
  const release = () => {
    pressed = null;
    // After the click the release makes, which runs in this same task.
    setTimeout(() => {
      for (const [el, redraw] of heldBack) replace(el, redraw);
      heldBack.clear();
    }, 0);
  };
  document.addEventListener("pointerup", release, true);
  document.addEventListener("pointercancel", release, true);
}

/** Replaces an element's children (once no pointer is pressed on one of them). */
export function fill(el: HTMLElement, ...children: (Child | Child[])[]): void {
  redraw(el, { children, keepFocus: false });
}

/** Attributes that name a control across redraws. */
const KEYS = ["data-action", "data-conv", "data-nav", "data-field", "aria-label"];

/**
 * Replaces an element's children like `fill`, and gives the focus back to the control
 * that had it, when the new children have one of the same name: a redraw must not throw a
 * keyboard user out of the list they are in.
 */
export function refill(el: HTMLElement, ...children: (Child | Child[])[]): void {
  redraw(el, { children, keepFocus: true });
}

function redraw(el: HTMLElement, next: Redraw): void {
  if (pressed && el.contains(pressed)) {
    heldBack.set(el, next);
    return;
  }
  heldBack.delete(el);
  replace(el, next);
}

function replace(el: HTMLElement, { children, keepFocus }: Redraw): void {
  const active = document.activeElement;
  const selector = keepFocus && active instanceof HTMLElement && el.contains(active) ? focusSelector(active) : null;
  el.replaceChildren();
  append(el, children);
  if (!selector) return;
  const again = el.querySelector<HTMLElement>(selector);
  again?.focus();
}

function focusSelector(el: HTMLElement): string | null {
  for (const key of KEYS) {
    const value = el.getAttribute(key);
    if (value !== null) return `${el.tagName.toLowerCase()}[${key}="${CSS.escape(value)}"]`;
  }
  return null;
}
