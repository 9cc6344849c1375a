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

/** Replaces an element's children. */
export function fill(el: HTMLElement, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  append(el, children);
}

/** Attributes that name a control across redraws. */
const KEYS = ["data-action", "data-conv", "data-nav", "data-field", "aria-label"];

/**
 * Replaces an element's children like `fill`, and gives the focus back to the control
 * that had it, when the new children have one of the same name: a redraw must not throw a
 * keyboard user out of the list they are in.
 */
export function refill(el: HTMLElement, ...children: (Child | Child[])[]): void {
  const active = document.activeElement;
  const selector = active instanceof HTMLElement && el.contains(active) ? focusSelector(active) : null;
  fill(el, ...children);
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
