/** The connection banner: shown whenever the client is not "ready". */
import type { ViewModel } from "../intents.js";
import { h, icon, ICONS } from "../dom.js";
import { devicesDialog } from "./dialogs.js";

/** Do not flash "Connecting…" for a start-up that takes less than this. */
const STARTUP_GRACE_MS = 1_500;

export class Banner {
  readonly el: HTMLElement;
  private readonly created = Date.now();
  private graceTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly model: ViewModel) {
    this.el = h("div", { class: "banner", role: "status", hidden: true });
  }

  render(): void {
    const { state, everReady, fatal } = this.model.state.connection;
    let kind: "warn" | "offline" | "error" = "warn";
    let text = "";
    let action: { label: string; run: () => void } | undefined;
    if (state === "ready") {
      text = this.model.state.connection.sendingSlowly ? "Sending slowly…" : "";
    } else if (state === "closed" && fatal) {
      kind = "error";
      if (fatal.code === "too_many_devices") {
        text = "This account is signed in on 10 devices. Remove one to connect this browser.";
        action = { label: "Manage devices", run: () => devicesDialog(this.model, true) };
      } else if (fatal.code === "replaced") {
        text = "This browser was disconnected because the same device connected elsewhere.";
        action = { label: "Reconnect", run: () => this.model.intents.connect() };
      } else {
        text = `Disconnected: ${fatal.message}`;
        action = { label: "Reconnect", run: () => this.model.intents.connect() };
      }
    } else if (state === "offline") {
      kind = "offline";
      text = "You're offline. Messages you send will go out when you're back.";
    } else if (!everReady && Date.now() - this.created < STARTUP_GRACE_MS) {
      // Starting up: give the first connection a moment before saying anything.
      clearTimeout(this.graceTimer);
      this.graceTimer = setTimeout(() => this.model.intents.requestRender(), STARTUP_GRACE_MS);
      text = "";
    } else if (!everReady) {
      text = "Connecting…";
    } else {
      text = "Reconnecting…";
      if (state === "reconnecting") action = { label: "Retry now", run: () => this.model.intents.reconnectNow() };
    }

    this.el.dataset.state = state;
    const sig = `${kind}|${text}|${action?.label ?? ""}`;
    if (this.el.dataset.sig === sig) return;
    this.el.dataset.sig = sig;
    this.el.hidden = text === "";
    this.el.className = `banner banner-${kind}`;
    if (text === "") {
      this.el.replaceChildren();
      return;
    }
    const spinner = kind === "warn" ? h("span", { class: "spinner", "aria-hidden": "true" }) : icon(kind === "offline" ? ICONS.wifiOff : ICONS.close);
    const button = action ? h("button", { type: "button", class: "banner-action" }, action.label) : null;
    if (button && action) button.addEventListener("click", action.run);
    this.el.replaceChildren(spinner, h("span", { class: "banner-text" }, text), ...(button ? [button] : []));
  }
}
