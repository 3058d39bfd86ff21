/**
 * Disappearing messages (docs/decisions/019): the header's timer (lit, with the lifetime, while
 * messages disappear), the dialog that sets it, and the words both use.
 */
import type { ChannelState } from "../../../client/index.js";
import type { ViewModel } from "../intents.js";
import { errorText } from "../errors.js";
import { h, icon } from "../dom.js";
import { openDialog } from "./dialog.js";
import { toast } from "./toast.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
export const TIMER = '<circle cx="12" cy="13" r="8"/><path d="M12 9v4l2 2"/><path d="M9 2h6"/>';

/** What the dialog offers; null = off (the server default, unset unless the operator chose one). */
const CHOICES: { label: string; ms: number | null }[] = [
  { label: "Off", ms: null },
  { label: "24 hours", ms: DAY },
  { label: "7 days", ms: 7 * DAY },
  { label: "90 days", ms: 90 * DAY },
];

/** "7 days", "24 hours", "90 days": how the app names a lifetime. */
export function lifetimeText(ms: number): string {
  if (ms % DAY === 0 && ms !== DAY) return `${ms / DAY} days`;
  if (ms % HOUR === 0) return ms === HOUR ? "1 hour" : `${ms / HOUR} hours`;
  return `${Math.round(ms / 60_000)} minutes`;
}

/** The header's sentence for a channel whose messages disappear. */
export function retentionNotice(ms: number): string {
  return `Messages older than ${lifetimeText(ms)} disappear`;
}

/** The header button: a timer, lit (with the lifetime) while messages disappear; opens the setting. */
export class RetentionButton {
  readonly el: HTMLButtonElement;
  private readonly label: HTMLElement;
  private channelId: string | undefined;
  private shown = -1;

  constructor(private readonly model: ViewModel) {
    this.label = h("span", { class: "retention-label" });
    this.el = h("button", { type: "button", class: "icon-btn retention-btn", "data-testid": "retention-button" }, icon(TIMER), this.label);
    this.el.addEventListener("click", () => this.channelId && retentionDialog(this.model, this.channelId));
    this.show(0);
  }

  update(channel: ChannelState | undefined): void {
    this.channelId = channel?.channel_id;
    this.el.hidden = channel === undefined;
    const ms = channel ? this.model.state.retentionOf(channel.channel_id) : 0;
    if (ms !== this.shown) this.show(ms);
  }

  private show(ms: number): void {
    this.shown = ms;
    const on = ms > 0;
    const text = on ? `Disappearing messages: ${retentionNotice(ms).toLowerCase()}` : "Disappearing messages: off";
    this.el.classList.toggle("on", on);
    this.el.setAttribute("aria-label", text);
    this.el.title = on ? retentionNotice(ms) : "Disappearing messages: off";
    this.label.textContent = on ? lifetimeText(ms) : "";
    this.label.hidden = !on;
  }
}

/** "Disappearing messages": off, 24 hours, 7 days or 90 days; owners and admins of a group, either person in a DM. */
export function retentionDialog({ state, intents }: ViewModel, channelId: string): void {
  const channel = state.channels.get(channelId);
  const dm = channel?.type === "dm";
  const role = state.roles.get(channelId);
  const mayChange = dm || role === "owner" || role === "admin";
  const current = state.retentionOf(channelId);
  const status = h("p", { class: "form-error", role: "alert" });
  const name = `retention-${channelId}`;
  const options = CHOICES.map((c) => {
    const id = `${name}-${c.ms ?? "off"}`;
    const checked = c.ms === null ? current === 0 : current === c.ms;
    const input = h("input", { type: "radio", name, id, value: String(c.ms ?? ""), checked, disabled: !mayChange, "data-autofocus": checked || undefined });
    input.addEventListener("change", () => {
      if (!input.checked) return;
      status.textContent = "";
      for (const box of Array.from(list.querySelectorAll<HTMLInputElement>("input"))) box.disabled = true;
      intents.setRetention(channelId, c.ms).then(
        () => {
          toast(c.ms === null ? "Disappearing messages are off." : `${retentionNotice(c.ms)}.`);
          handle.close();
        },
        (err: unknown) => {
          status.textContent = errorText(err);
          for (const box of Array.from(list.querySelectorAll<HTMLInputElement>("input"))) box.disabled = false;
        },
      );
    });
    return h("div", { class: "setting" }, h("label", { for: id, class: "setting-label" }, c.label), input);
  });
  const list = h("fieldset", { class: "setting-list retention-choices" }, h("legend", { class: "sr-only" }, "Keep messages for"), ...options);
  const hint = mayChange
    ? "New and existing messages older than this disappear for everyone in this conversation."
    : "Only the group's owner and admins can change this.";
  const done = h("button", { type: "button", class: "btn btn-primary" }, "Done");
  const handle = openDialog({ title: "Disappearing messages", description: hint, content: [list, status, h("div", { class: "dialog-actions" }, done)] });
  done.addEventListener("click", () => handle.close());
}
