/** The left column: brand, "new conversation", the channel list with unread badges, the account. */
import { mutedMark } from "./mute.js";
import type { ChannelState } from "../../../client/index.js";
import type { ViewModel } from "../intents.js";
import { arrowNavigation, h, icon, ICONS, reconcile } from "../dom.js";
import { hlcMillis, listTime } from "../format.js";
import { avatar } from "./avatar.js";
import { accountDialog } from "./account.js";
import { devicesDialog, newChatDialog, privacyDialog } from "./dialogs.js";
import { logo } from "./login.js";

export class Sidebar {
  readonly el: HTMLElement;
  private readonly list: HTMLUListElement;
  private readonly empty: HTMLElement;
  private readonly account: HTMLElement;
  private readonly search: HTMLInputElement;
  private readonly noMatch: HTMLElement;

  constructor(private readonly model: ViewModel) {
    const newChat = h("button", { type: "button", class: "icon-btn icon-btn-accent", "aria-label": "New conversation", title: "New conversation" }, icon(ICONS.plus));
    newChat.addEventListener("click", () => newChatDialog(model));
    this.list = h("ul", { class: "channel-list", "aria-label": "Conversations" });
    arrowNavigation(this.list, ".channel-item");
    const start = h("button", { type: "button", class: "btn btn-primary" }, "Start a conversation");
    start.addEventListener("click", () => newChatDialog(model));
    this.empty = h(
      "div",
      { class: "list-empty", hidden: true },
      h("div", { class: "empty-illustration", "aria-hidden": "true" }, icon(ICONS.chat)),
      h("p", { class: "empty-title" }, "No conversations yet"),
      h("p", { class: "empty-text" }, "Message someone by their username, or start a group."),
      start,
    );
    this.account = h("div", { class: "account" });
    this.search = h("input", { type: "search", class: "search-input", placeholder: "Search conversations", "aria-label": "Search conversations", autocomplete: "off", spellcheck: "false" });
    this.search.addEventListener("input", () => this.render());
    this.search.addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown") {
        e.preventDefault();
        this.list.querySelector<HTMLElement>(".channel-item")?.focus();
      } else if (e.key === "Escape" && this.search.value !== "") {
        e.preventDefault();
        this.search.value = "";
        this.render();
      }
    });
    this.noMatch = h("p", { class: "list-no-match", hidden: true });
    this.el = h(
      "aside",
      { class: "sidebar", "aria-label": "Conversations" },
      h("header", { class: "sidebar-header" }, logo(), newChat),
      h("div", { class: "sidebar-search" }, h("span", { class: "search-icon", "aria-hidden": "true" }, icon(ICONS.search)), this.search),
      h("nav", { class: "sidebar-scroll", "aria-label": "Conversation list" }, this.list, this.noMatch, this.empty),
      this.account,
    );
  }

  render(): void {
    const { state } = this.model;
    const all = state.sortedChannels();
    const query = this.search.value.trim().toLowerCase();
    const channels = query === "" ? all : all.filter((c) => state.channelTitle(c).toLowerCase().includes(query));
    this.empty.hidden = all.length > 0 || !state.connection.everReady;
    this.noMatch.hidden = channels.length > 0 || all.length === 0;
    this.search.parentElement!.hidden = all.length === 0 && query === "";
    this.noMatch.textContent = `No conversations match “${this.search.value.trim()}”.`;
    const now = Date.now();
    reconcile(this.list, channels.map((c) => {
      const title = state.channelTitle(c);
      const preview = state.previewOf(c.channel_id);
      const partner = c.type === "dm" ? state.dmPartner(c.channel_id) : undefined;
      const status = partner ? state.presence.get(partner)?.status : undefined;
      const time = listTime(c.last_activity_at || hlcMillis(c.last_activity_hlc) || state.lastMessage.get(c.channel_id)?.server_ts || 0, now);
      const active = c.channel_id === state.activeId;
      const unread = active ? 0 : c.unread_count;
      return {
        key: c.channel_id,
        sig: JSON.stringify([title, preview, status, time, active, unread, c.type, c.muted]),
        render: () => this.item(c, title, preview, status, time, active, unread),
      };
    }));
    this.renderAccount();
  }

  private item(c: ChannelState, title: string, preview: string, status: string | undefined, time: string, active: boolean, unread: number): HTMLElement {
    // The accessible name is the visible text (name, time, preview, badge) plus what only the
    // picture says: presence, and what the badge's number counts.
    const presence = status === "online" || status === "away" ? h("span", { class: "sr-only" }, `, ${status}`) : null;
    const button = h(
      "button",
      { type: "button", class: `channel-item${active ? " active" : ""}${unread > 0 ? " unread" : ""}`, "aria-current": active ? "true" : undefined, "data-channel": c.channel_id },
      c.type === "broadcast"
        ? h("span", { class: "avatar broadcast-avatar", "data-testid": "broadcast-icon" }, icon(ICONS.megaphone), h("span", { class: "sr-only" }, "Channel: "))
        : avatar(c.type === "dm" ? this.model.state.dmPartner(c.channel_id) ?? c.channel_id : c.channel_id, title, { group: c.type !== "dm", ...(status ? { status } : {}) }),
      h(
        "span",
        { class: "ci-main" },
        h("span", { class: "ci-top" }, h("span", { class: "ci-name" }, title), presence, mutedMark(c), h("span", { class: "ci-time" }, time)),
        h(
          "span",
          { class: "ci-bottom" },
          h("span", { class: "ci-preview" }, preview || (c.type === "dm" ? "Direct message" : c.type === "broadcast" ? `${c.member_count} subscribers` : `${c.member_count} members`)),
          unread > 0 ? h("span", { class: "badge", "data-testid": "unread-badge" }, unread > 99 ? "99+" : String(unread), h("span", { class: "sr-only" }, " unread")) : null,
        ),
      ),
    );
    button.addEventListener("click", () => this.model.intents.open(c.channel_id));
    return h("li", {}, button);
  }

  private renderAccount(): void {
    const me = this.model.state.me;
    const name = me.display_name || me.username;
    const picture = this.model.intents.avatarUrl(me.user_id);
    const sig = `${me.user_id}|${name}|${me.username}|${picture ?? ""}`;
    if (this.account.dataset.sig === sig) return;
    this.account.dataset.sig = sig;
    const settings = h("button", { type: "button", class: "icon-btn", "aria-label": "Account settings", title: "Account settings" }, icon(ICONS.edit));
    settings.addEventListener("click", () => accountDialog(this.model));
    const privacy = h("button", { type: "button", class: "icon-btn", "aria-label": "Privacy", title: "Privacy" }, icon(ICONS.shield));
    privacy.addEventListener("click", () => privacyDialog(this.model));
    const devices = h("button", { type: "button", class: "icon-btn", "aria-label": "Devices", title: "Devices" }, icon(ICONS.devices));
    devices.addEventListener("click", () => devicesDialog(this.model));
    const signOut = h("button", { type: "button", class: "icon-btn", "aria-label": "Sign out", title: "Sign out" }, icon(ICONS.logout));
    signOut.addEventListener("click", () => void this.model.intents.signOut());
    this.account.replaceChildren(
      avatar(me.user_id, name, { size: "sm", src: picture }),
      h("span", { class: "account-names" }, h("span", { class: "account-name" }, name), h("span", { class: "account-handle" }, `@${me.username}`)),
      settings,
      privacy,
      devices,
      signOut,
    );
  }
}
