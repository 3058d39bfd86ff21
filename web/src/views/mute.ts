/** Mute per conversation: the header's bell (on/off) and the muted mark in the channel list. */
import type { ChannelState } from "../../../client/index.js";
import type { Intents } from "../intents.js";
import { errorText } from "../errors.js";
import { h, icon } from "../dom.js";
import { toast } from "./toast.js";

const BELL = '<path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9"/><path d="M10.3 21a1.94 1.94 0 0 0 3.4 0"/>';
const BELL_OFF = `${BELL}<path d="m2 2 20 20"/>`;

/** The header button: pressed = muted (no push notifications for this conversation). */
export class MuteButton {
  readonly el: HTMLButtonElement;
  private channelId: string | undefined;
  private muted = false;

  constructor(private readonly intents: Intents) {
    this.el = h("button", { type: "button", class: "icon-btn mute-btn", "aria-pressed": "false" });
    this.el.addEventListener("click", () => this.toggle());
    this.show(false);
  }

  update(channel: ChannelState | undefined): void {
    this.channelId = channel?.channel_id;
    this.el.hidden = channel === undefined;
    if (channel && channel.muted !== this.muted) this.show(channel.muted);
  }

  private show(muted: boolean): void {
    this.muted = muted;
    const label = muted ? "Unmute notifications" : "Mute notifications";
    this.el.setAttribute("aria-pressed", String(muted));
    this.el.setAttribute("aria-label", label);
    this.el.title = label;
    this.el.replaceChildren(icon(muted ? BELL_OFF : BELL));
  }

  private toggle(): void {
    const id = this.channelId;
    if (!id) return;
    const next = !this.muted;
    this.show(next);
    // Every device (this one included) gets CHANNEL_UPDATE with the new state.
    this.intents.mute(id, next).then(
      () => toast(next ? "Muted: no notifications for this conversation." : "Notifications on for this conversation."),
      (err: unknown) => { this.show(!next); toast(`Could not change: ${errorText(err)}`, "error"); },
    );
  }
}

/** The channel list's mark for a muted conversation (the picture, plus words for screen readers). */
export function mutedMark(channel: ChannelState): HTMLElement | null {
  return channel.muted ? h("span", { class: "ci-muted", title: "Muted" }, icon(BELL_OFF), h("span", { class: "sr-only" }, ", muted")) : null;
}
