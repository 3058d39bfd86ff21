/** Small transient notices ("Reactions are not available yet") in a polite live region. */
import { h } from "../dom.js";

const VISIBLE_MS = 4_000;

export function toast(text: string, kind: "info" | "error" = "info"): void {
  const region = document.getElementById("toasts");
  if (!region) return;
  // The same notice twice in a row: restart its timer instead of stacking copies.
  const same = Array.from(region.children).find((el) => el.textContent === text);
  same?.remove();
  const el = h("div", { class: `toast toast-${kind}` }, text);
  region.append(el);
  while (region.children.length > 3) region.firstElementChild?.remove();
  setTimeout(() => {
    el.classList.add("toast-leaving");
    setTimeout(() => el.remove(), 200);
  }, VISIBLE_MS);
}
