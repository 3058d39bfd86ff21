/**
 * What the views may ask for. The app (app.ts) implements it; views receive a `ViewModel` (the
 * state they draw plus these intents) and never see the app, the SDK client or each other's
 * internals. Adding a screen means adding a view over this model, not reaching into app.ts.
 */
import type { CreateChannelInput, Device, InvitePreview, UserSettings } from "../../client/index.js";
import type { ChatState } from "./state.js";
import type { NotificationState } from "./push.js";

/** A DM by username, a named group with members (usernames), or a broadcast channel. */
export type NewChannel = Extract<CreateChannelInput, { type: "dm" }> | { type: "group"; name: string; members: string[] }
  | { type: "broadcast"; name: string; description: string };

export interface Intents {
  /** Opens a conversation (and records it in the URL so a reload comes back to it). */
  open(channelId: string): void;
  /** Back to the list (phone layout). */
  closeConversation(): void;
  /** Scroll-back: the page before the oldest loaded message. */
  loadOlder(channelId: string): Promise<void>;

  send(channelId: string, text: string): void;
  retry(clientMsgId: string): void;
  discard(clientMsgId: string): void;
  /** The composer changed (typing indicators). */
  composing(channelId: string, text: string): void;
  /** Toggles the user's reaction. */
  react(channelId: string, seq: number, emoji: string): void;
  /** Resolve to true once done; failures are shown as toasts. */
  editMessage(channelId: string, seq: number, text: string): Promise<boolean>;
  deleteMessage(channelId: string, seq: number, forEveryone: boolean): Promise<boolean>;

  /** Files for a conversation (attach button, drop, paste), and their bytes for the viewer. */
  readonly files: FileIntents;

  /** Resolve to an error sentence for the dialog, or nothing once done. */
  createChannel(input: NewChannel): Promise<string | void>;
  addMembers(channelId: string, usernames: string[]): Promise<string | void>;
  /** A new invite link of a group or broadcast channel (owners and admins). */
  createInvite(channelId: string): Promise<{ ok: true; url: string } | { ok: false; error: string }>;
  /**
   * One page of a channel's members (names known once it resolves); page on with `next_cursor`
   * until it is "". A group of 1,000 is read a page at a time, as the reader scrolls.
   */
  memberPage(channelId: string, cursor: string): Promise<{ ok: true; members: { user_id: string; role: string }[]; next_cursor: string } | { ok: false; error: string }>;
  /** What an invite code leads to (name, type, size). */
  previewInvite(code: string): Promise<{ ok: true; preview: InvitePreview } | { ok: false; error: string }>;
  /** Joins through the code and opens the channel; resolves to an error sentence on failure. */
  joinInvite(code: string): Promise<string | void>;

  /** Starts (or restarts) the realtime connection. */
  connect(): void;
  /** Drops the socket and connects at once, skipping the backoff wait. */
  reconnectNow(): void;
  signOut(): Promise<void>;

  listDevices(): Promise<Device[]>;
  removeDevice(deviceId: string): Promise<void>;
  /** "Sign out this device": ends the session a device uses; its socket closes at once. */
  signOutSession(sessionId: string): Promise<void>;
  /** "Sign out everywhere else": every session but this browser's; resolves with how many. */
  signOutOthers(): Promise<number>;
  settings(): Promise<UserSettings>;
  updateSettings(patch: Partial<UserSettings>): Promise<UserSettings>;
  /** Downloads everything the server holds about the user as a JSON file. */
  exportData(): Promise<void>;
  /** Disappearing messages: a lifetime in ms, or null for off (the server default). */
  setRetention(channelId: string, ms: number | null): Promise<void>;
  /** Account settings; each resolves once saved (the new profile is in `state.me`). */
  rename(displayName: string): Promise<void>;
  /** Scales the picture down to an avatar in the browser, then uploads it. */
  setAvatar(file: Blob): Promise<void>;
  removeAvatar(): Promise<void>;
  /** An object URL of a user's avatar, or undefined while it loads or when there is none. */
  avatarUrl(userId: string): string | undefined;
  /** Resolves with how many other sessions were signed out. */
  changePassword(currentPassword: string, newPassword: string): Promise<number>;
  /** Deletes the account (after the password); the app signs out with "Your account is being deleted". */
  deleteAccount(password: string): Promise<void>;
  /** Mute (no push notifications) or unmute a conversation on all of the user's devices. */
  mute(channelId: string, muted: boolean): Promise<void>;
  /** Notifications on this browser: where they stand, and turning them on (from a click) or off. */
  notificationState(): Promise<NotificationState>;
  enableNotifications(): Promise<NotificationState>;
  disableNotifications(): Promise<void>;

  /** Schedules a render of every view on the next frame (for views with their own timers). */
  requestRender(): void;
}

export interface FileIntents {
  /** Uploads each file, then sends it as a message; progress shows in `ChatState.uploads`. */
  add(channelId: string, files: File[]): void;
  /** Stops an upload and tells the server to drop what arrived. */
  cancel(key: string): void;
  /** Tries a failed upload again, resuming from the parts the server has. */
  retry(key: string): void;
  /** A short-lived URL of an attachment's bytes (the image viewer, downloads). */
  url(attachmentId: string): Promise<string>;
}

export interface ViewModel {
  readonly state: ChatState;
  readonly intents: Intents;
}
