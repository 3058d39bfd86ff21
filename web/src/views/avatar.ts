import { h } from "../dom.js";
import { avatarHue, initials } from "../format.js";

/**
 * A round avatar: the user's picture when `src` (an object URL of it) is given, else initials;
 * `status` adds a presence dot (online / away).
 */
export function avatar(id: string, name: string, options: { size?: "sm" | "md" | "lg"; group?: boolean; status?: string; src?: string | undefined } = {}): HTMLElement {
  const el = h(
    "span",
    { class: `avatar avatar-${options.size ?? "md"}${options.group ? " avatar-group" : ""}`, "aria-hidden": "true" },
    options.src ? h("img", { class: "avatar-img", src: options.src, alt: "" }) : initials(name),
  );
  // Through the CSSOM: the Content-Security-Policy (web/public/_headers) refuses style attributes.
  el.style.setProperty("--hue", String(avatarHue(id)));
  if (options.status === "online" || options.status === "away") el.append(h("span", { class: `presence-dot presence-${options.status}` }));
  return el;
}
