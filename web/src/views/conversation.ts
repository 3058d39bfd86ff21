/**
 * The open conversation: header, the message log with scroll-back, the typing line, the files
 * going up (attach button, drop, paste) and the composer. The log keeps its place while older pages are prepended and follows new messages
 * only while the reader is at the bottom.
 */
import { MuteButton } from "./mute.js";
import { RetentionButton } from "./retention.js";
import type { ChannelState } from "../../../client/index.js";
import { LIMITS } from "../../../protocol/limits.js";
import type { Intents, ViewModel } from "../intents.js";
import type { ChatState } from "../state.js";
import { h, icon, ICONS, reconcile, type KeyedItem } from "../dom.js";
import { clockTime, joinNames, lastSeenText, typingText } from "../format.js";
import { buildTimeline, hasOlder, typingUsers, type TimelineItem } from "../model.js";
import { avatar } from "./avatar.js";
import { focusAfterDialog } from "./dialog.js";
import { addMembersDialog, deleteDialog, editDialog, inviteDialog, membersDialog } from "./dialogs.js";
import { attachmentView, CLIP_ICON, renderUploadTray } from "./attachments.js";

type MessageItem = Extract<TimelineItem, { kind: "message" }>;

const REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🙏"];
/** Start fetching the previous page this close to the top (px). */
const LOAD_OLDER_MARGIN = 400;
/** Within this of the bottom counts as "at the bottom" (px). */
const BOTTOM_SLACK = 48;
/** The floating day label fades this long after the last scroll. */
const DAY_FLOAT_MS = 1_200;

export class ConversationView {
  readonly el: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly pane: HTMLElement;
  private readonly back: HTMLButtonElement;
  private readonly headAvatar: HTMLElement;
  private readonly title: HTMLHeadingElement;
  private readonly mute: MuteButton;
  private readonly retention: RetentionButton;
  private readonly subtitle: HTMLElement;
  private readonly addPeople: HTMLButtonElement;
  private readonly invite: HTMLButtonElement;
  private readonly membersButton: HTMLButtonElement;
  /** Shown instead of the composer where the user may not post (a broadcast channel's subscribers). */
  private readonly readOnly: HTMLElement;
  /** "Jump to latest": this conversation skipped a long gap and starts at its newest messages. */
  private readonly skipped: HTMLButtonElement;
  private readonly log: HTMLElement;
  private readonly top: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly typing: HTMLElement;
  private readonly form: HTMLFormElement;
  private readonly input: HTMLTextAreaElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly jump: HTMLButtonElement;
  private readonly dayFloat: HTMLElement;
  private dayFloatTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * When the reader last moved the log themselves (wheel, touch, keys, scrollbar); never until
   * they do. Not 0: a fast page opens its first conversation within DAY_FLOAT_MS of its own start.
   */
  private readerScrolledAt = Number.NEGATIVE_INFINITY;
  private readonly tray: HTMLElement;
  private readonly fileInput: HTMLInputElement;
  private readonly drafts = new Map<string, string>();
  private shownId: string | undefined;
  private lastSeqSeen = 0;
  private unseen = 0;
  private menu: HTMLElement | undefined;

  private readonly state: ChatState;
  private readonly intents: Intents;

  constructor(private readonly model: ViewModel) {
    this.state = model.state;
    this.intents = model.intents;
    this.back = h("button", { type: "button", class: "icon-btn back-btn", "aria-label": "Back to conversations" }, icon(ICONS.back));
    this.back.addEventListener("click", () => {
      const id = this.shownId;
      this.intents.closeConversation();
      // Phone layout: land on the conversation just left.
      requestAnimationFrame(() => document.querySelector<HTMLElement>(`.channel-item[data-channel="${id}"]`)?.focus());
    });
    this.headAvatar = h("span");
    this.title = h("h2", { class: "conv-title", id: "conv-title" });
    this.subtitle = h("p", { class: "conv-subtitle" });
    this.addPeople = h("button", { type: "button", class: "btn btn-ghost btn-sm add-people" }, icon(ICONS.userPlus), h("span", { class: "btn-label" }, "Add people"));
    this.addPeople.addEventListener("click", () => this.shownId && addMembersDialog(model, this.shownId));
    this.invite = h("button", { type: "button", class: "btn btn-ghost btn-sm invite-link", hidden: true }, icon(ICONS.link), h("span", { class: "btn-label" }, "Invite link"));
    this.invite.addEventListener("click", () => this.shownId && inviteDialog(model, this.shownId));
    this.skipped = h("button", { type: "button", class: "skipped-note", hidden: true, "data-testid": "jump-to-latest" }, "Jump to latest · you were away a while, older messages are above");
    this.skipped.addEventListener("click", () => {
      if (this.shownId) this.state.jumped.delete(this.shownId);
      this.skipped.hidden = true;
      this.scrollToBottom(true);
    });
    this.membersButton = h("button", { type: "button", class: "btn btn-ghost btn-sm members-btn", hidden: true }, h("span", { class: "btn-label" }, "Members"));
    this.membersButton.addEventListener("click", () => {
      const id = this.shownId;
      const channel = id ? this.state.channels.get(id) : undefined;
      if (id && channel) membersDialog(model, id, this.state.channelTitle(channel));
    });
    this.readOnly = h("p", { class: "composer-readonly", hidden: true, "data-testid": "read-only" }, "Only admins can post");
    this.mute = new MuteButton(model.intents);
    this.retention = new RetentionButton(model);

    this.top = h("div", { class: "log-top" });
    this.list = h("ol", { class: "messages" });
    this.log = h("div", { class: "log", role: "log", tabindex: "0", "aria-labelledby": "conv-title", "aria-describedby": "log-help" }, this.top, this.list);
    this.jump = h("button", { type: "button", class: "jump", hidden: true }, icon(ICONS.down), h("span", {}, "Latest"));
    this.jump.addEventListener("click", () => this.scrollToBottom(true));
    this.typing = h("div", { class: "typing", "aria-live": "polite" });
    // Decoration for sighted readers: the day separators in the log say the same to everyone.
    this.dayFloat = h("div", { class: "day-float", "aria-hidden": "true" });

    this.input = h("textarea", { id: "composer-input", class: "composer-input", rows: 1, placeholder: "Message", "aria-label": "Message", autocomplete: "off", enterkeyhint: "send" });
    this.sendButton = h("button", { type: "submit", class: "send-btn", "aria-label": "Send message", title: "Send (Enter)" }, icon(ICONS.send));
    this.tray = h("div", { class: "upload-tray", hidden: true, "aria-live": "polite" });
    this.fileInput = h("input", { type: "file", multiple: true, hidden: true, "data-testid": "attach-input" });
    const attach = h("button", { type: "button", class: "attach-btn icon-btn", "aria-label": "Attach files", title: "Attach files" }, icon(CLIP_ICON));
    attach.addEventListener("click", () => this.fileInput.click());
    this.form = h("form", { class: "composer" }, attach, this.fileInput, this.input, this.sendButton);

    this.pane = h(
      "section",
      { class: "conversation", "aria-labelledby": "conv-title", hidden: true },
      h("header", { class: "conv-header" }, this.back, this.headAvatar, h("div", { class: "conv-heading" }, this.title, this.subtitle), this.membersButton, this.invite, this.addPeople, this.retention.el, this.mute.el),
      this.skipped,
      h("div", { class: "log-wrap" }, this.log, this.dayFloat, this.jump),
      this.typing,
      this.tray,
      this.form,
      this.readOnly,
      h("p", { id: "log-help", class: "sr-only" }, "Use the arrow keys to move between messages and Enter for a message's actions."),
    );
    this.empty = h(
      "div",
      { class: "conv-empty" },
      h("div", { class: "empty-illustration", "aria-hidden": "true" }, icon(ICONS.chat)),
      h("p", { class: "empty-title" }, "Pick a conversation"),
      h("p", { class: "empty-text" }, "Choose one from the list, or start a new one with the + button."),
    );
    this.el = h("div", { class: "conversation-host" }, this.empty, this.pane);
    this.wire();
  }

  private wire(): void {
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => {
      this.autosize();
      this.updateSendButton();
      if (this.shownId) {
        this.drafts.set(this.shownId, this.input.value);
        this.intents.composing(this.shownId, this.input.value);
      }
    });
    this.log.addEventListener("scroll", () => {
      if (!this.shownId) return;
      if (this.log.scrollTop < LOAD_OLDER_MARGIN) void this.intents.loadOlder(this.shownId);
      // Only for the reader's own scrolling: the view's jumps (opening, following new messages)
      // would flash the label over the rows for nothing.
      if (performance.now() - this.readerScrolledAt < DAY_FLOAT_MS) this.showDayFloat();
      if (this.atBottom()) {
        this.unseen = 0;
        this.updateJump();
      } else if (this.jump.hidden) {
        this.updateJump();
      }
    }, { passive: true });
    this.log.addEventListener("keydown", (e) => this.onLogKey(e));
    const readerScrolls = (): void => {
      this.readerScrolledAt = performance.now();
    };
    for (const type of ["wheel", "touchmove", "pointerdown", "keydown"]) this.log.addEventListener(type, readerScrolls, { passive: true });
    this.wireFiles();
    document.addEventListener("mousedown", (e) => {
      if (this.menu && !this.menu.contains(e.target as Node)) this.closeMenu(false);
    });
  }

  /** The attach button, files dropped on the conversation, files pasted into the composer. */
  private wireFiles(): void {
    const add = (files: FileList | null | undefined) => {
      if (this.shownId && files && files.length > 0) this.intents.files.add(this.shownId, Array.from(files));
    };
    this.fileInput.addEventListener("change", () => {
      add(this.fileInput.files);
      this.fileInput.value = "";
    });
    this.pane.addEventListener("dragover", (e) => {
      if (!e.dataTransfer?.types.includes("Files")) return;
      e.preventDefault();
      this.pane.classList.add("drop-target");
    });
    this.pane.addEventListener("dragleave", (e) => {
      if (e.target === this.pane || !this.pane.contains(e.relatedTarget as Node)) this.pane.classList.remove("drop-target");
    });
    this.pane.addEventListener("drop", (e) => {
      this.pane.classList.remove("drop-target");
      if (!e.dataTransfer?.files.length) return;
      e.preventDefault();
      add(e.dataTransfer.files);
    });
    this.input.addEventListener("paste", (e) => {
      const files = e.clipboardData?.files;
      if (!files || files.length === 0) return;
      e.preventDefault();
      add(files);
    });
  }

  private renderUploads(): void {
    if (this.shownId) renderUploadTray(this.tray, this.state.uploadsIn(this.shownId), this.intents.files);
  }

  private submit(): void {
    const id = this.shownId;
    if (!id || this.input.value.trim() === "") return;
    this.intents.send(id, this.input.value);
    this.input.value = "";
    this.drafts.delete(id);
    this.autosize();
    this.updateSendButton();
    this.scrollToBottom(false);
    this.input.focus();
  }

  render(): void {
    const state = this.state;
    const id = state.activeId;
    const channel = id ? state.channels.get(id) : undefined;
    if (!id) {
      if (this.shownId !== undefined) this.closeMenu(false);
      this.shownId = undefined;
      this.pane.hidden = true;
      this.empty.hidden = false;
      return;
    }
    const switched = this.shownId !== id;
    if (switched) this.switchTo(id);
    this.renderHeader(id, channel);

    const conv = state.conv(id);
    const others = (state.members.get(id) ?? []).filter((u) => u !== state.me.user_id);
    const items = buildTimeline({
      conv, pending: state.pendingIn(id), me: state.me.user_id, others, nameOf: (u) => state.nameOf(u), now: Date.now(),
    });

    // Keep the reader's place: follow the bottom, or pin the first visible row across prepends.
    const stick = switched || this.atBottom();
    const anchor = stick ? undefined : this.firstVisible();
    const group = channel?.type !== "dm";
    reconcile(this.list, items.map((item) => this.keyed(item, id, group)));
    this.renderTop(id, channel);
    if (stick) this.scrollToBottom(false);
    else if (anchor) {
      const el = this.list.querySelector<HTMLElement>(`[data-key="${CSS.escape(anchor.key)}"]`);
      if (el) this.log.scrollTop = el.offsetTop - anchor.offset;
    }

    // Messages from others that arrived below the fold.
    let newest = 0;
    for (const item of items) if (item.kind === "message" && item.seq !== undefined && item.seq > newest) newest = item.seq;
    if (!switched && !stick && newest > this.lastSeqSeen) {
      this.unseen += items.filter((i) => i.kind === "message" && !i.mine && i.seq !== undefined && i.seq > this.lastSeqSeen).length;
    }
    this.lastSeqSeen = Math.max(this.lastSeqSeen, newest);
    this.updateJump();

    this.renderUploads();
    const typers = typingUsers(conv, Date.now()).map((u) => state.nameOf(u));
    const text = typingText(typers);
    if (this.typing.dataset.text !== text) {
      this.typing.dataset.text = text;
      this.typing.replaceChildren(...(text ? [h("span", { class: "typing-dots", "aria-hidden": "true" }, h("span"), h("span"), h("span")), h("span", {}, text)] : []));
    }

    // A short conversation may not fill the log, and a reader may sit near the top after a
    // page arrived: no scroll event would ask for more in either case.
    const nearTop = !stick && this.log.scrollTop < LOAD_OLDER_MARGIN;
    if (conv.loaded && hasOlder(conv) && !conv.loadingOlder && (nearTop || this.log.scrollHeight <= this.log.clientHeight + LOAD_OLDER_MARGIN)) {
      void this.intents.loadOlder(id);
    }
  }

  private switchTo(id: string): void {
    this.closeMenu(false);
    this.shownId = id;
    this.pane.hidden = false;
    this.empty.hidden = true;
    this.list.replaceChildren();
    this.dayFloat.classList.remove("visible");
    this.unseen = 0;
    this.lastSeqSeen = 0;
    this.input.value = this.drafts.get(id) ?? "";
    this.autosize();
    this.updateSendButton();
    // Phone layout: the list is hidden now, so focus must move; desktop: ready to type.
    if (!this.pane.contains(document.activeElement)) focusAfterDialog(this.input);
  }

  private renderHeader(id: string, channel: ChannelState | undefined): void {
    const state = this.state;
    const title = channel ? state.channelTitle(channel) : "Conversation";
    const dm = channel?.type === "dm";
    const partner = dm ? state.dmPartner(id) : undefined;
    const presence = partner ? state.presence.get(partner) : undefined;
    let sub = "";
    let subClass = "conv-subtitle";
    if (dm) {
      if (presence?.status === "online") {
        sub = "Online";
        subClass += " online";
      } else if (presence && presence.last_seen > 0) {
        sub = lastSeenText(presence.last_seen, Date.now());
      } else if (partner) {
        const u = state.users.get(partner);
        sub = u ? `@${u.username}` : "";
      }
    } else if (channel?.type === "broadcast") {
      const n = channel.member_count;
      sub = `${n} subscriber${n === 1 ? "" : "s"}`;
    } else if (channel) {
      const ids = state.members.get(id) ?? [];
      const members = ids.map((u) => (u === state.me.user_id ? "you" : state.nameOf(u)));
      const online = ids.filter((u) => u !== state.me.user_id && state.presence.get(u)?.status === "online").length;
      sub = `${channel.member_count || members.length} members${online > 0 ? ` · ${online} online` : ""}${members.length > 0 ? ` · ${joinNames(members)}` : ""}`;
    }
    this.mute.update(channel);
    const admin = state.isAdmin(id);
    const canPost = state.canPost(id);
    this.invite.hidden = dm || channel === undefined || !admin;
    // Subscribers of a broadcast channel do not see each other.
    this.membersButton.hidden = dm || channel === undefined || (channel.type === "broadcast" && !admin);
    this.form.hidden = !canPost;
    this.skipped.hidden = !state.jumped.has(id);
    this.readOnly.hidden = canPost;
    this.retention.update(channel);
    const sig = JSON.stringify([title, sub, subClass, presence?.status, dm, channel?.type]);
    if (this.pane.dataset.sig === sig) return;
    this.pane.dataset.sig = sig;
    this.title.textContent = title;
    this.subtitle.textContent = sub;
    this.subtitle.className = subClass;
    this.headAvatar.replaceChildren(channel?.type === "broadcast"
      ? h("span", { class: "avatar broadcast-avatar", "aria-hidden": "true" }, icon(ICONS.megaphone))
      : avatar(partner ?? id, title, { group: !dm, ...(presence?.status ? { status: presence.status } : {}) }));
    this.addPeople.hidden = dm || channel === undefined || channel.type === "broadcast";
    this.input.placeholder = `Message ${dm ? title : `#${title}`}`;
    this.input.setAttribute("aria-label", `Message ${title}`);
  }

  private renderTop(id: string, channel: ChannelState | undefined): void {
    const conv = this.state.conv(id);
    let state: string;
    if (!conv.loaded || conv.loadingOlder) state = "loading";
    else if (hasOlder(conv)) state = "more";
    else state = "start";
    // The start names the channel, which may become known after its history: redraw then too.
    const title = channel ? this.state.channelTitle(channel) : "";
    const dm = channel?.type === "dm";
    const partner = dm ? this.state.dmPartner(id) : undefined;
    const expired = this.state.olderExpired(id);
    const sig = JSON.stringify([id, state, state === "start" ? [title, dm, partner, expired] : null]);
    if (this.top.dataset.sig === sig) return;
    this.top.dataset.sig = sig;
    this.top.dataset.state = state;
    if (state === "loading") {
      this.top.replaceChildren(h("span", { class: "spinner", "aria-hidden": "true" }), h("span", { class: "sr-only" }, "Loading messages"));
    } else if (state === "start" && expired) {
      // The low-water mark: what came before it is gone for everyone (docs/protocol.md, "Retention").
      this.top.replaceChildren(h("p", { class: "log-expired", "data-testid": "history-expired" }, "Older messages have expired"));
    } else if (state === "start") {
      this.top.replaceChildren(
        h("div", { class: "log-start" },
          avatar(partner ?? id, title, { size: "lg", group: !dm }),
          h("p", { class: "log-start-title" }, title),
          h("p", { class: "log-start-text" }, !channel ? "This is the beginning of the conversation."
            : dm ? `This is the beginning of your conversation with ${title}.`
              : channel.type === "broadcast" ? `This is the beginning of the channel ${title}.` : `This is the beginning of the group ${title}.`)),
      );
    } else {
      this.top.replaceChildren();
    }
  }

  private keyed(item: TimelineItem, channelId: string, group: boolean): KeyedItem {
    if (item.kind === "day") {
      return { key: item.key, sig: item.label, render: () => h("li", { class: "day-sep" }, h("span", {}, item.label)) };
    }
    if (item.kind === "system") {
      return { key: item.key, sig: item.text, render: () => h("li", { class: "system-msg" }, item.text) };
    }
    const sender = item.mine ? "You" : this.state.nameOf(item.senderId);
    const time = clockTime(item.ts);
    const sig = JSON.stringify([item.text, item.state, item.status, item.first, item.last, item.edited, item.deleted, item.reactions, sender, time, group, item.error, item.seq, item.attachment?.attachment_id,
      item.mine ? undefined : this.model.intents.avatarUrl(item.senderId)]);
    return { key: item.key, sig, render: () => this.message(item, channelId, group, sender, time) };
  }

  private message(item: MessageItem, channelId: string, group: boolean, sender: string, time: string): HTMLElement {
    const classes = ["msg", item.mine ? "msg-mine" : "msg-theirs", item.first ? "first" : "", item.last ? "last" : "", item.state !== "sent" ? `msg-${item.state}` : "", item.deleted ? "msg-deleted" : ""];
    const showSender = group && !item.mine && item.first;
    const showAvatar = group && !item.mine;
    const text = item.deleted ? "This message was deleted" : item.text;
    const more = h("button", { type: "button", class: "msg-more", tabindex: "-1", "aria-label": "Message actions", "aria-haspopup": "menu" }, icon(ICONS.more));
    // The time shows on the last bubble of a run (and on hover everywhere); "edited" always.
    const edited = item.edited && !item.deleted;
    const showTime = item.last || item.state !== "sent";
    const bubbleClass = ["bubble", edited ? "edited" : "", showTime ? "timed" : "", item.attachment ? "bubble-att" : ""].filter(Boolean).join(" ");
    const bubble = h("div", { class: bubbleClass, title: new Date(item.ts).toLocaleString() },
      h("span", { class: "sr-only" }, `${sender}, ${time}: `),
      item.attachment ? attachmentView(this.intents.files, item.attachment) : h("span", { class: "msg-text" }, text),
      showTime || edited
        ? h("span", { class: "msg-meta", "aria-hidden": "true" }, edited ? (showTime ? "edited · " : "edited") : "", showTime ? h("time", { datetime: new Date(item.ts).toISOString() }, time) : null)
        : null);
    const reactions = item.reactions.length > 0
      ? h("div", { class: "reactions" }, ...item.reactions.map((r) => {
        const mine = r.user_ids.includes(this.state.me.user_id);
        const who = r.user_ids.map((u) => (u === this.state.me.user_id ? "You" : this.state.nameOf(u)));
        const b = h("button", { type: "button", class: `reaction${mine ? " mine" : ""}`, "aria-pressed": String(mine), title: `${joinNames(who)} reacted with ${r.emoji}` }, `${r.emoji} ${r.user_ids.length}`);
        b.addEventListener("click", () => item.seq !== undefined && this.intents.react(channelId, item.seq, r.emoji));
        return b;
      }))
      : null;
    let status: HTMLElement | null = null;
    if (item.status) {
      status = h("div", { class: `msg-status status-${item.state === "failed" ? "failed" : item.status.startsWith("Read") ? "read" : item.state}`, "data-testid": "msg-status" }, item.status);
      if (item.state === "failed") {
        const retry = h("button", { type: "button", class: "link-btn" }, "Retry");
        retry.addEventListener("click", () => this.intents.retry(item.clientMsgId));
        status.append(" · ", retry);
        if (item.error) status.title = item.error;
      }
    }
    const li = h("li", { class: classes.filter(Boolean).join(" "), tabindex: "-1", "data-seq": item.seq ?? "", "data-client-id": item.clientMsgId },
      showAvatar ? (item.last ? avatar(item.senderId, sender, { size: "sm", src: this.model.intents.avatarUrl(item.senderId) }) : h("span", { class: "avatar-spacer" })) : null,
      h("div", { class: "msg-body" },
        showSender ? h("div", { class: "msg-sender" }, sender) : null,
        h("div", { class: "bubble-row" }, bubble, item.deleted ? null : more),
        reactions,
        status));
    more.addEventListener("click", (e) => {
      e.stopPropagation();
      this.openMenu(li, item, channelId);
    });
    return li;
  }

  // ---- Message actions -------------------------------------------------------------------------

  private onLogKey(e: KeyboardEvent): void {
    const target = e.target as HTMLElement;
    if (this.menu?.contains(target)) return;
    const messages = Array.from(this.list.querySelectorAll<HTMLElement>("li.msg"));
    if (messages.length === 0) return;
    const current = target.closest<HTMLElement>("li.msg");
    const i = current ? messages.indexOf(current) : messages.length;
    let next: HTMLElement | undefined;
    if (e.key === "ArrowUp") next = messages[Math.max(0, i - 1)];
    else if (e.key === "ArrowDown") next = current ? messages[i + 1] : undefined;
    else if (e.key === "Home" && current) next = messages[0];
    else if (e.key === "End" && current) next = messages.at(-1);
    else if ((e.key === "Enter" || e.key === " " || e.key === "ContextMenu") && current) {
      e.preventDefault();
      current.querySelector<HTMLButtonElement>(".msg-more")?.click();
      return;
    } else if (e.key === "Escape") {
      e.preventDefault();
      this.input.focus();
      return;
    }
    if (next) {
      e.preventDefault();
      next.focus();
      if (next === messages.at(-1)) this.unseen = 0;
    } else if (e.key === "ArrowDown" && current) {
      e.preventDefault();
      this.input.focus();
    }
  }

  private openMenu(li: HTMLElement, item: MessageItem, channelId: string): void {
    this.closeMenu(false);
    const seq = item.seq;
    const entries: HTMLButtonElement[] = [];
    const action = (label: string, run: () => void, extra: Record<string, string> = {}): HTMLButtonElement => {
      const b = h("button", { type: "button", role: "menuitem", tabindex: "-1", ...extra }, label);
      b.addEventListener("click", () => {
        this.closeMenu(true);
        run();
      });
      entries.push(b);
      return b;
    };
    const rows: HTMLElement[] = [];
    if (seq !== undefined) {
      rows.push(h("div", { class: "menu-reactions", role: "group", "aria-label": "React" },
        ...REACTIONS.map((emoji) => action(emoji, () => this.intents.react(channelId, seq, emoji), { "aria-label": `React with ${emoji}`, class: "menu-emoji" }))));
      const list: HTMLElement[] = [action("Copy text", () => void navigator.clipboard?.writeText(item.text).catch(() => {}), { class: "menu-item" })];
      if (item.mine && Date.now() - item.ts < LIMITS.editWindowMs) {
        list.push(action("Edit", () => editDialog(this.model, channelId, seq, item.text), { class: "menu-item" }));
      }
      if ((item.mine && Date.now() - item.ts < LIMITS.deleteWindowMs) || this.state.canModerate(channelId)) {
        list.push(action("Delete for everyone", () => deleteDialog(this.model, channelId, seq, true), { class: "menu-item menu-danger" }));
      }
      list.push(action("Delete for me", () => deleteDialog(this.model, channelId, seq, false), { class: "menu-item menu-danger" }));
      rows.push(h("div", { class: "menu-list" }, ...list));
    } else if (item.state === "failed") {
      rows.push(h("div", { class: "menu-list" },
        action("Retry", () => this.intents.retry(item.clientMsgId), { class: "menu-item" }),
        action("Discard", () => this.intents.discard(item.clientMsgId), { class: "menu-item menu-danger" })));
    } else {
      rows.push(h("div", { class: "menu-list" }, action("Copy text", () => void navigator.clipboard?.writeText(item.text).catch(() => {}), { class: "menu-item" })));
    }
    const menu = h("div", { class: `msg-menu${item.mine ? " menu-mine" : ""}`, role: "menu", "aria-label": "Message actions" }, ...rows);
    menu.addEventListener("keydown", (e) => {
      const i = entries.indexOf(document.activeElement as HTMLButtonElement);
      const step = e.key === "ArrowRight" || e.key === "ArrowDown" ? 1 : e.key === "ArrowLeft" || e.key === "ArrowUp" ? -1 : 0;
      if (step !== 0) {
        e.preventDefault();
        entries[(i + step + entries.length) % entries.length]?.focus();
      } else if (e.key === "Escape" || e.key === "Tab") {
        e.preventDefault();
        this.closeMenu(true);
      }
    });
    li.classList.add("menu-open");
    // Open downwards near the top of the log, where an upward menu would be clipped.
    if (li.offsetTop - this.log.scrollTop < 180) menu.classList.add("menu-below");
    li.querySelector(".bubble-row")!.append(menu);
    this.menu = menu;
    entries[0]?.focus();
  }

  private closeMenu(returnFocus: boolean): void {
    const menu = this.menu;
    if (!menu) return;
    this.menu = undefined;
    const li = menu.closest<HTMLElement>("li.msg");
    li?.classList.remove("menu-open");
    menu.remove();
    if (returnFocus && li?.isConnected) li.focus();
  }

  // ---- Scrolling -------------------------------------------------------------------------------

  private atBottom(): boolean {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < BOTTOM_SLACK;
  }

  private scrollToBottom(smooth: boolean): void {
    this.log.scrollTo({ top: this.log.scrollHeight, behavior: smooth ? "smooth" : "instant" });
    this.unseen = 0;
    this.updateJump();
  }

  /** The first row at least partly visible, and its offset from the top of the log. */
  private firstVisible(): { key: string; offset: number } | undefined {
    const top = this.log.scrollTop;
    // Day separators move to whichever message starts the day, so they make poor anchors.
    for (const el of Array.from(this.list.querySelectorAll<HTMLElement>(":scope > li.msg, :scope > li.system-msg"))) {
      if (el.offsetTop + el.offsetHeight > top && el.dataset.key) return { key: el.dataset.key, offset: el.offsetTop - top };
    }
    return undefined;
  }

  /** While scrolling: the day of the rows at the top, once its own separator has scrolled away. */
  private showDayFloat(): void {
    const top = this.log.scrollTop;
    let label = "";
    for (const sep of Array.from(this.list.querySelectorAll<HTMLElement>(":scope > li.day-sep"))) {
      if (sep.offsetTop + sep.offsetHeight > top) break;
      label = sep.textContent ?? "";
    }
    clearTimeout(this.dayFloatTimer);
    if (label === "") {
      this.dayFloat.classList.remove("visible");
      return;
    }
    this.dayFloat.textContent = label;
    this.dayFloat.classList.add("visible");
    this.dayFloatTimer = setTimeout(() => this.dayFloat.classList.remove("visible"), DAY_FLOAT_MS);
  }

  private updateJump(): void {
    const show = !this.atBottom() && this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight > 240;
    this.jump.hidden = !show && this.unseen === 0;
    if (this.jump.hidden) return;
    this.jump.dataset.unseen = String(this.unseen);
    const label = this.unseen > 0 ? `${this.unseen} new message${this.unseen === 1 ? "" : "s"}` : "Latest";
    this.jump.lastElementChild!.textContent = label;
    this.jump.setAttribute("aria-label", `Jump to latest${this.unseen > 0 ? `, ${label}` : ""}`);
  }

  private autosize(): void {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 160)}px`;
  }

  private updateSendButton(): void {
    this.sendButton.classList.toggle("ready", this.input.value.trim() !== "");
  }
}
