/** The app's dialogs: new conversation, add people, edit, delete, devices, privacy. */
import type { Device, UserSettings } from "../../../client/index.js";
import { errorText } from "../errors.js";
import type { ViewModel } from "../intents.js";
import { h } from "../dom.js";
import { lastSeenText, parseUsernames } from "../format.js";
import { field, formDialog, openDialog } from "./dialog.js";
import { notificationsSetting } from "./notifications.js";
import { toast } from "./toast.js";

type NewKind = "dm" | "group" | "broadcast";
const KIND_LABELS: Record<NewKind, string> = { dm: "Direct message", group: "Group", broadcast: "Channel" };

export function newChatDialog({ state, intents }: ViewModel): void {
  let type: NewKind = "dm";
  const dmFields = h("div", { class: "field-group" }, field({ label: "Username", name: "member", required: true, placeholder: "e.g. bob", autofocus: true, error: "Type the username of the person to message." }));
  const groupFields = h(
    "div",
    { class: "field-group", hidden: true },
    field({ label: "Group name", name: "name", maxlength: 100, placeholder: "e.g. Weekend plans", error: "Give the group a name." }),
    field({ label: "Members", name: "members", placeholder: "bob, carol", hint: "Usernames, separated by commas. You can add more people later." }),
  );
  const broadcastFields = h(
    "div",
    { class: "field-group", hidden: true },
    field({ label: "Channel name", name: "channel_name", maxlength: 100, placeholder: "e.g. Release notes", error: "Give the channel a name." }),
    field({ label: "Description", name: "description", maxlength: 500, placeholder: "What subscribers will read here", hint: "Only you and the admins you choose can post; subscribers read. Share an invite link to let people in." }),
  );
  const kinds: NewKind[] = ["dm", "group", "broadcast"];
  const tabs = kinds.map((t) =>
    h("button", { type: "button", class: "segment", role: "radio", "aria-checked": String(t === type), "data-type": t }, KIND_LABELS[t]),
  );
  const segmented = h("div", { class: "segmented", role: "radiogroup", "aria-label": "Conversation type" }, ...tabs);
  const select = (next: NewKind): void => {
    type = next;
    for (const t of tabs) {
      const on = t.dataset.type === next;
      t.setAttribute("aria-checked", String(on));
      t.tabIndex = on ? 0 : -1;
    }
    dmFields.hidden = next !== "dm";
    groupFields.hidden = next !== "group";
    broadcastFields.hidden = next !== "broadcast";
    dmFields.querySelector("input")!.required = next === "dm";
    groupFields.querySelector<HTMLInputElement>("input[name=name]")!.required = next === "group";
    broadcastFields.querySelector<HTMLInputElement>("input[name=channel_name]")!.required = next === "broadcast";
  };
  for (const t of tabs) {
    t.addEventListener("click", () => select(t.dataset.type as NewKind));
    t.addEventListener("keydown", (e) => {
      if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
        e.preventDefault();
        const step = e.key === "ArrowRight" ? 1 : kinds.length - 1;
        const next = kinds[(kinds.indexOf(type) + step) % kinds.length]!;
        select(next);
        tabs.find((b) => b.dataset.type === next)?.focus();
      }
    });
  }
  select("dm");
  formDialog({
    title: "New conversation",
    fields: [segmented, dmFields, groupFields, broadcastFields],
    submitLabel: "Start",
    onSubmit: async (form) => {
      const value = (name: string): string => (form.querySelector<HTMLInputElement>(`[name=${name}]`)?.value ?? "").trim();
      if (type === "dm") {
        const member = value("member").replace(/^@/, "");
        if (member === state.me.username) return "That's you! Type someone else's username.";
        return intents.createChannel({ type: "dm", member });
      }
      if (type === "broadcast") return intents.createChannel({ type: "broadcast", name: value("channel_name"), description: value("description") });
      return intents.createChannel({ type: "group", name: value("name"), members: parseUsernames(value("members")) });
    },
  });
}

/** The channel's invite link: made on open, shown with a Copy button. */
export function inviteDialog({ intents }: ViewModel, channelId: string): void {
  const link = h("input", { class: "invite-url", readonly: true, "aria-label": "Invite link", "data-testid": "invite-url", value: "" });
  const status = h("p", { class: "field-hint", "aria-live": "polite" }, "Making a link…");
  const copy = h("button", { type: "button", class: "btn btn-secondary", disabled: true }, "Copy link");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(link.value);
      toast("Invite link copied");
    } catch {
      link.select();
      toast("Select the link and copy it", "error");
    }
  });
  openDialog({
    title: "Invite link",
    content: [h("p", {}, "Anyone signed in who has this link can join."), link, copy, status],
  });
  void intents.createInvite(channelId).then((r) => {
    if (r.ok) {
      link.value = r.url;
      status.textContent = "";
      copy.disabled = false;
    } else {
      status.textContent = r.error;
    }
  });
}

/** Opened from `#/join/<code>`: what the link leads to, and a Join button. */
export function joinDialog({ intents }: ViewModel, code: string): void {
  const about = h("div", { class: "invite-preview", "data-testid": "invite-preview" }, h("p", {}, "Looking up the invite…"));
  formDialog({
    title: "Join",
    fields: [about],
    submitLabel: "Join",
    onSubmit: () => intents.joinInvite(code),
  });
  void intents.previewInvite(code).then((r) => {
    if (!r.ok) {
      about.replaceChildren(h("p", { class: "field-error" }, r.error));
      return;
    }
    const c = r.preview.channel;
    const size = c.type === "broadcast" ? `${c.member_count} subscriber${c.member_count === 1 ? "" : "s"}` : `${c.member_count} member${c.member_count === 1 ? "" : "s"}`;
    about.replaceChildren(
      h("p", { class: "invite-name" }, c.name),
      h("p", { class: "field-hint" }, `${c.type === "broadcast" ? "Channel" : "Group"} · ${size}${r.preview.member ? " · you are a member" : ""}`),
    );
  });
}

export function addMembersDialog({ intents }: ViewModel, channelId: string): void {
  formDialog({
    title: "Add people",
    description: "They will see the group's history from the moment they join.",
    fields: [field({ label: "Usernames", name: "members", required: true, placeholder: "dave, erin", hint: "Separated by commas.", autofocus: true, error: "Type at least one username." })],
    submitLabel: "Add",
    onSubmit: async (form) => {
      const names = parseUsernames(form.querySelector<HTMLInputElement>("[name=members]")!.value);
      if (names.length === 0) return "Type at least one username.";
      return intents.addMembers(channelId, names);
    },
  });
}

export function editDialog({ intents }: ViewModel, channelId: string, seq: number, text: string): void {
  formDialog({
    title: "Edit message",
    fields: [field({ label: "Message", name: "text", required: true, multiline: true, value: text, autofocus: true, error: "A message cannot be empty." })],
    submitLabel: "Save",
    onSubmit: async (form) => {
      const next = form.querySelector<HTMLTextAreaElement>("[name=text]")!.value.trim();
      if (next === text.trim()) return;
      await intents.editMessage(channelId, seq, next);
    },
  });
}

/** Delete for everyone (a tombstone others see) or only for me (gone from all my devices). */
export function deleteDialog({ intents }: ViewModel, channelId: string, seq: number, forEveryone: boolean): void {
  formDialog({
    title: forEveryone ? "Delete for everyone?" : "Delete for you?",
    description: forEveryone
      ? "Everyone in this conversation will see \u201cThis message was deleted\u201d instead."
      : "It will be removed from all your devices. Others in the conversation still see it.",
    fields: [],
    submitLabel: "Delete",
    danger: true,
    onSubmit: async () => {
      await intents.deleteMessage(channelId, seq, forEveryone);
    },
  });
}

/**
 * This account's devices. Each other device can be signed out (its session ends: its socket
 * closes at once and it must sign in again) or removed from the list; "Sign out everywhere else"
 * ends every session but this browser's. `reconnectAfter` offers to connect once one is gone.
 */
export function devicesDialog({ state, intents }: ViewModel, reconnectAfter = false): void {
  const list = h("ul", { class: "device-list", "aria-busy": "true" }, h("li", { class: "muted" }, "Loading…"));
  const status = h("p", { class: "form-error", role: "alert" });
  const others = h("button", { type: "button", class: "btn btn-danger" }, "Sign out everywhere else");
  const done = h("button", { type: "button", class: "btn btn-primary" }, reconnectAfter ? "Reconnect" : "Done");
  const handle = openDialog({
    title: "Your devices",
    description: "This browser is one device, however many tabs are open; an account can have up to 10.",
    content: [list, status, h("div", { class: "dialog-actions" }, others, done)],
  });
  done.addEventListener("click", () => {
    handle.close();
    if (reconnectAfter) intents.connect();
  });
  /** Runs `work` with `button` disabled; a failure is shown in the dialog. */
  const act = (button: HTMLButtonElement, work: () => Promise<unknown>): void => {
    button.disabled = true;
    status.textContent = "";
    work().then(() => load(), (err: unknown) => {
      button.disabled = false;
      status.textContent = errorText(err);
    });
  };
  others.addEventListener("click", () => act(others, async () => {
    const n = await intents.signOutOthers();
    others.disabled = false;
    toast(n === 0 ? "No other device was signed in" : `Signed out ${n === 1 ? "1 other session" : `${n} other sessions`}`);
  }));
  const load = async (): Promise<void> => {
    let devices: Device[];
    try {
      devices = await intents.listDevices();
    } catch (err) {
      list.replaceChildren();
      status.textContent = errorText(err);
      return;
    }
    list.removeAttribute("aria-busy");
    devices.sort((a, b) => Number(b.device_id === state.deviceId) - Number(a.device_id === state.deviceId) || b.last_seen_at - a.last_seen_at);
    list.replaceChildren(...devices.map((d) => {
      const self = d.device_id === state.deviceId;
      const name = d.name || d.device_id;
      const sessionId = d.session_id;
      const signOut = self || !sessionId ? null : h("button", { type: "button", class: "btn btn-ghost btn-sm", "aria-label": `Sign out ${name}` }, "Sign out");
      signOut?.addEventListener("click", () => act(signOut, () => intents.signOutSession(sessionId!)));
      const remove = self ? null : h("button", { type: "button", class: "btn btn-ghost btn-sm", "aria-label": `Remove ${name}` }, "Remove");
      remove?.addEventListener("click", () => act(remove, () => intents.removeDevice(d.device_id)));
      const detail = self ? "This browser"
        : !sessionId ? "Signed out"
        : d.connected ? "Connected now" : lastSeenText(d.last_seen_at, Date.now()).replace(/^last seen/, "Last active");
      return h("li", { class: "device" },
        h("span", { class: "device-names" }, h("span", { class: "device-name" }, name), h("span", { class: "device-detail" }, detail)),
        signOut, remove);
    }));
  };
  void load();
}

/** Privacy: read receipts, presence, previews and who may add me to groups, each saved as soon as it is switched. */
export function privacyDialog({ intents }: ViewModel): void {
  const status = h("p", { class: "form-error", role: "alert" });
  /** A switch for one setting: the value it stores when on and when off, and what an older server's missing value means. */
  type Option = { key: keyof UserSettings; label: string; hint: string; on: UserSettings[keyof UserSettings]; off: UserSettings[keyof UserSettings]; absent: boolean };
  const options: Option[] = [
    { key: "read_receipts", label: "Send read receipts", hint: "Others see when you have read their messages.", on: true, off: false, absent: true },
    { key: "share_presence", label: "Show when I'm online", hint: "Off: you appear offline and others do not see when you were last seen.", on: true, off: false, absent: true },
    { key: "push_previews", label: "Show message text in notifications", hint: "Off: notifications say who wrote where, not what.", on: true, off: false, absent: true },
    {
      key: "group_adds", label: "Only people I talk with can add me to groups",
      hint: "On: someone you have no conversation with yet cannot put you in a group; they can still send you a message.",
      on: "contacts", off: "everyone", absent: false,
    },
  ];
  const boxes = new Map<Option, HTMLInputElement>();
  const isOn = (o: Option, settings: UserSettings): boolean => settings[o.key] === undefined ? o.absent : settings[o.key] === o.on;
  const rows = options.map((o) => {
    const id = `privacy-${o.key}`;
    const box = h("input", { type: "checkbox", id, role: "switch", disabled: true, "aria-describedby": `${id}-hint` });
    boxes.set(o, box);
    box.addEventListener("change", () => {
      box.disabled = true;
      status.textContent = "";
      intents.updateSettings({ [o.key]: box.checked ? o.on : o.off }).then(
        (saved) => { box.checked = isOn(o, saved); },
        (err: unknown) => { box.checked = !box.checked; status.textContent = errorText(err); },
      ).finally(() => { box.disabled = false; });
    });
    return h("li", { class: "setting" },
      h("span", { class: "setting-text" }, h("label", { for: id, class: "setting-label" }, o.label), h("span", { id: `${id}-hint`, class: "setting-hint" }, o.hint)),
      box);
  });
  const done = h("button", { type: "button", class: "btn btn-primary" }, "Done");
  const download = h("button", { type: "button", class: "btn" }, "Download my data");
  download.addEventListener("click", () => {
    download.disabled = true;
    status.textContent = "";
    intents.exportData().catch((err: unknown) => { status.textContent = errorText(err); }).finally(() => { download.disabled = false; });
  });
  const handle = openDialog({ title: "Privacy", content: [h("ul", { class: "setting-list" }, ...rows, notificationsSetting(intents)), status, h("div", { class: "dialog-actions" }, download, done)] });
  done.addEventListener("click", () => handle.close());
  intents.settings().then((settings) => {
    for (const [o, box] of boxes) {
      box.checked = isOn(o, settings);
      box.disabled = false;
    }
  }, (err: unknown) => { status.textContent = errorText(err); });
}

/** The member list, a page at a time: the next page loads as the reader nears the end. */
export function membersDialog({ state, intents }: ViewModel, channelId: string, title: string): void {
  const list = h("ul", { class: "member-list", "data-testid": "member-list" });
  const status = h("p", { class: "field-hint", "aria-live": "polite" }, "Loading…");
  const scroller = h("div", { class: "member-scroll" }, list, status);
  let cursor = "";
  let loading = false;
  let done = false;
  const more = async (): Promise<void> => {
    if (loading || done) return;
    loading = true;
    const page = await intents.memberPage(channelId, cursor);
    loading = false;
    if (!page.ok) {
      status.textContent = page.error;
      return;
    }
    for (const m of page.members) {
      const role = m.role === "owner" ? "Owner" : m.role === "admin" ? "Admin" : "";
      list.append(h("li", { class: "member-row" }, h("span", { class: "member-name" }, m.user_id === state.me.user_id ? "You" : state.nameOf(m.user_id)), role ? h("span", { class: "member-role" }, role) : null));
    }
    cursor = page.next_cursor;
    done = cursor === "";
    status.textContent = done ? "" : "Scroll for more";
    // A short first page may not fill the box: no scroll event would ask for the next.
    if (!done && scroller.scrollHeight <= scroller.clientHeight + 40) void more();
  };
  scroller.addEventListener("scroll", () => {
    if (scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 80) void more();
  });
  openDialog({ title: `Members of ${title}`, content: [scroller] });
  void more();
}
