/**
 * The REST half of the SDK: a JSON transport that turns every failure into an EdgechatError, and
 * the typed endpoints of docs/protocol.md. Authenticated calls go through Auth, which refreshes an
 * expired access token and retries once.
 */
import { wellFormedDeep } from "../protocol/text.js";
import { EdgechatError, isAuthCode, isSignedOutCode, type ServerErrorCode } from "./errors.js";
import type { Auth } from "./auth.js";
import type { PushConfig, PushProvider, PushSubscriptionInput } from "../protocol/push.js";
import type {
  BulkAddResult, Channel, ChannelState, CreateChannelInput, Invite, InvitePreview, Device, FetchLike, HistoryOptions, HistoryPage, MemberPage, PresenceEvent, SessionInfo, User, UserSettings, ChannelPatch,
} from "./types.js";
import {
  bulkAddFromJson, channelFromJson, channelStateFromJson, inviteFromJson, invitePreviewFromJson, deviceFromJson, historyPageFromJson, isObject, memberPageFromJson, presenceFromJson, sessionInfoFromJson, userFromJson,
  usersFromJson,
} from "./wire.js";

/** The code for an error response whose body carries none. */
const STATUS_CODES: Record<number, ServerErrorCode> = {
  400: "invalid_argument", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
  413: "content_too_large", 415: "unsupported_media_type", 429: "rate_limited", 501: "not_implemented", 503: "unavailable",
};

export interface CallOptions {
  body?: unknown;
  token?: string;
  /** Bytes sent as they are (an avatar), instead of a JSON body. */
  bytes?: { data: Uint8Array; contentType: string };
}

export class Http {
  constructor(
    private readonly baseUrl: string,
    private readonly fetchImpl: FetchLike,
  ) {}

  /** Calls an endpoint; resolves with its parsed JSON body (undefined for 204). */
  async call(method: string, path: string, options: CallOptions = {}): Promise<unknown> {
    return (await this.exchange(method, path, options)).body;
  }

  /** Like call(), with the HTTP status (201 vs 200 matters for some endpoints). */
  async exchange(method: string, path: string, options: CallOptions = {}): Promise<{ status: number; body: unknown }> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    const init: { method: string; headers: Record<string, string>; body?: string | Uint8Array<ArrayBuffer> } = { method, headers };
    if (options.bytes !== undefined) {
      headers["content-type"] = options.bytes.contentType;
      init.body = new Uint8Array(options.bytes.data); // a copy on its own ArrayBuffer, as fetch bodies want
    } else if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    let res;
    try {
      // Called detached: a fetch invoked as a method of another object throws "Illegal invocation".
      const fetchImpl = this.fetchImpl;
      res = await fetchImpl(this.baseUrl + path, init);
    } catch (err) {
      throw new EdgechatError({ code: "network_error", message: `${method} ${path} failed: ${err instanceof Error ? err.message : String(err)}`, retryable: true });
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new EdgechatError({ code: "network_error", message: `${method} ${path}: reading the body failed: ${err instanceof Error ? err.message : String(err)}`, retryable: true, status: res.status });
    }
    let body: unknown;
    if (text !== "") {
      try {
        // A lone surrogate from an older server reads as U+FFFD, as it does in frames.
        body = wellFormedDeep(JSON.parse(text));
      } catch {
        body = undefined;
      }
    }
    if (res.ok) return { status: res.status, body };
    throw errorFromResponse(res.status, body, `${method} ${path}`);
  }

  /** GET of a binary resource (an avatar): its bytes and content type. */
  async bytes(path: string, token: string): Promise<{ bytes: Uint8Array; type: string }> {
    let res;
    try {
      const fetchImpl = this.fetchImpl;
      res = await fetchImpl(this.baseUrl + path, { method: "GET", headers: { authorization: `Bearer ${token}` } });
    } catch (err) {
      throw new EdgechatError({ code: "network_error", message: `GET ${path} failed: ${err instanceof Error ? err.message : String(err)}`, retryable: true });
    }
    if (!res.ok || !res.arrayBuffer) throw errorFromResponse(res.status, parsedOrUndefined(await res.text()), `GET ${path}`);
    return { bytes: new Uint8Array(await res.arrayBuffer()), type: res.headers?.get("content-type") ?? "" };
  }
}

function parsedOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function errorFromResponse(status: number, body: unknown, what: string): EdgechatError {
  const b = isObject(body) ? body : {};
  const code = typeof b.code === "string" ? b.code : STATUS_CODES[status] ?? (status >= 500 ? "internal" : "bad_response");
  const hint = typeof b.backoff_hint_ms === "number" ? b.backoff_hint_ms : undefined;
  return new EdgechatError({
    code,
    message: typeof b.message === "string" ? b.message : `${what} answered HTTP ${status}.`,
    retryable: typeof b.retryable === "boolean" ? b.retryable : status === 429 || status >= 500,
    ...(hint !== undefined ? { backoffHintMs: hint } : {}),
    ...(typeof b.trace_id === "string" ? { traceId: b.trace_id } : {}),
    status,
  });
}

/** True for failures a fresh access token fixes (not a signed-out session: nothing fixes that). */
export function needsRefresh(err: unknown): boolean {
  return err instanceof EdgechatError && !isSignedOutCode(err.code) && (err.status === 401 || isAuthCode(err.code));
}

/** The authenticated endpoints. */
export class RestApi {
  constructor(
    private readonly http: Http,
    private readonly auth: Auth,
  ) {}

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    return (await this.exchange(method, path, body)).body;
  }

  private exchange(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    return this.auth.withToken((token) => this.http.exchange(method, path, body === undefined ? { token } : { token, body }));
  }

  /** Any authenticated endpoint, for modules with their own typed helpers (attachments). */
  request(method: string, path: string, body?: unknown): Promise<unknown> {
    return this.call(method, path, body);
  }

  async me(): Promise<User> {
    return userFromJson(await this.call("GET", "/v1/me"));
  }

  /** PATCH /v1/me: a new display name, or `avatar: null` to remove the avatar. */
  async updateProfile(patch: { display_name?: string; avatar?: null }): Promise<User> {
    return userFromJson(await this.call("PATCH", "/v1/me", patch));
  }

  /** PUT /v1/me/avatar: an image (AVATAR_CONTENT_TYPES, ≤ 256 KiB by default). */
  async setAvatar(data: Uint8Array, contentType: string): Promise<User> {
    const r = await this.auth.withToken((token) => this.http.exchange("PUT", "/v1/me/avatar", { token, bytes: { data, contentType } }));
    return userFromJson(r.body);
  }

  /** The picture at a profile's avatar_url, with its type. */
  async avatar(avatarUrl: string): Promise<{ bytes: Uint8Array; type: string }> {
    return this.auth.withToken((token) => this.http.bytes(avatarUrl, token));
  }

  /** POST /v1/me/password; resolves with how many other sessions were signed out. */
  async changePassword(currentPassword: string, newPassword: string): Promise<number> {
    const body = await this.call("POST", "/v1/me/password", { current_password: currentPassword, new_password: newPassword });
    return isObject(body) && typeof body.sessions_ended === "number" ? body.sessions_ended : 0;
  }

  /** DELETE /v1/me: starts the account's erasure (docs/protocol.md, "Deleting an account"). */
  async deleteAccount(password: string): Promise<{ started_at: number }> {
    const body = await this.call("DELETE", "/v1/me", { password });
    return { started_at: isObject(body) && typeof body.started_at === "number" ? body.started_at : 0 };
  }

  async settings(patch?: Partial<UserSettings>): Promise<UserSettings> {
    const body = patch === undefined ? await this.call("GET", "/v1/me/settings") : await this.call("PATCH", "/v1/me/settings", patch);
    if (!isObject(body) || typeof body.read_receipts !== "boolean" || typeof body.share_presence !== "boolean") throw badResponse("settings");
    const settings: UserSettings = { read_receipts: body.read_receipts, share_presence: body.share_presence };
    if (typeof body.push_previews === "boolean") settings.push_previews = body.push_previews;
    if (body.group_adds === "everyone" || body.group_adds === "contacts") settings.group_adds = body.group_adds;
    return settings;
  }

  /** GET /v1/me/export: everything the server holds about this user (docs/protocol.md). */
  async exportData(): Promise<Record<string, unknown>> {
    const body = await this.call("GET", "/v1/me/export");
    if (!isObject(body) || typeof body.format !== "string") throw badResponse("export");
    return body;
  }

  async lookupUser(username: string): Promise<User> {
    return userFromJson(await this.call("GET", `/v1/users?username=${encodeURIComponent(username)}`));
  }

  /** Profiles of up to 100 user ids (unknown ids are left out). */
  async profiles(userIds: string[]): Promise<User[]> {
    return usersFromJson(await this.call("GET", `/v1/users?ids=${userIds.map(encodeURIComponent).join(",")}`));
  }

  /** A page of a channel's members after `cursor`. */
  async members(channelId: string, options: { cursor?: string; limit?: number } = {}): Promise<MemberPage> {
    const q = new URLSearchParams();
    if (options.cursor) q.set("cursor", options.cursor);
    if (options.limit !== undefined) q.set("limit", String(options.limit));
    const qs = q.toString();
    return memberPageFromJson(await this.call("GET", `/v1/channels/${encodeURIComponent(channelId)}/members${qs ? `?${qs}` : ""}`));
  }

  async getUser(userId: string): Promise<User> {
    return userFromJson(await this.call("GET", `/v1/users/${encodeURIComponent(userId)}`));
  }

  async presence(userIds: string[]): Promise<PresenceEvent[]> {
    const body = await this.call("GET", `/v1/presence?user_ids=${userIds.map(encodeURIComponent).join(",")}`);
    if (!isObject(body) || !Array.isArray(body.presence)) throw badResponse("presence");
    return body.presence.map(presenceFromJson);
  }

  async listChannels(): Promise<ChannelState[]> {
    const body = await this.call("GET", "/v1/channels");
    if (!isObject(body) || !Array.isArray(body.channels)) throw badResponse("channels");
    return body.channels.map(channelStateFromJson);
  }

  /** `created`: a new channel (201), rather than the existing DM between the two users (200). */
  async createChannel(input: CreateChannelInput): Promise<{ channel: Channel; created: boolean }> {
    const res = await this.exchange("POST", "/v1/channels", input);
    return { channel: channelFromJson(res.body), created: res.status === 201 };
  }

  async getChannel(channelId: string): Promise<Channel> {
    return channelFromJson(await this.call("GET", `/v1/channels/${encodeURIComponent(channelId)}`));
  }

  async updateChannel(channelId: string, patch: ChannelPatch): Promise<Channel> {
    return channelFromJson(await this.call("PATCH", `/v1/channels/${encodeURIComponent(channelId)}`, patch));
  }

  async addMembers(channelId: string, members: string[]): Promise<Channel> {
    return channelFromJson(await this.call("POST", `/v1/channels/${encodeURIComponent(channelId)}/members`, { members }));
  }

  /** Up to 1,000 user ids into a broadcast channel (owners and admins); idempotent. */
  async bulkAdd(channelId: string, userIds: string[]): Promise<BulkAddResult> {
    return bulkAddFromJson(await this.call("POST", `/v1/channels/${encodeURIComponent(channelId)}/members/bulk`, { user_ids: userIds }));
  }

  /** The owner makes a member an admin, or an admin a member. */
  async setRole(channelId: string, userId: string, role: "admin" | "member"): Promise<void> {
    await this.call("PATCH", `/v1/channels/${encodeURIComponent(channelId)}/members/${encodeURIComponent(userId)}`, { role });
  }

  async createInvite(channelId: string, options: { max_uses?: number; expires_in_s?: number } = {}): Promise<Invite> {
    return inviteFromJson(await this.call("POST", `/v1/channels/${encodeURIComponent(channelId)}/invites`, options));
  }

  async listInvites(channelId: string): Promise<Invite[]> {
    const body = await this.call("GET", `/v1/channels/${encodeURIComponent(channelId)}/invites`);
    if (!isObject(body) || !Array.isArray(body.invites)) throw badResponse("invites");
    return body.invites.map(inviteFromJson);
  }

  async revokeInvite(channelId: string, code: string): Promise<void> {
    await this.call("DELETE", `/v1/channels/${encodeURIComponent(channelId)}/invites/${encodeURIComponent(code)}`);
  }

  async previewInvite(code: string): Promise<InvitePreview> {
    return invitePreviewFromJson(await this.call("GET", `/v1/invites/${encodeURIComponent(code)}`));
  }

  async joinInvite(code: string): Promise<{ channel: Channel; joined: boolean }> {
    const body = await this.call("POST", `/v1/invites/${encodeURIComponent(code)}/join`);
    return { channel: channelFromJson(body), joined: isObject(body) && body.joined === true };
  }

  async removeMember(channelId: string, userId: string): Promise<Channel> {
    return channelFromJson(await this.call("DELETE", `/v1/channels/${encodeURIComponent(channelId)}/members/${encodeURIComponent(userId)}`));
  }

  async history(channelId: string, options: HistoryOptions): Promise<HistoryPage> {
    const q = new URLSearchParams();
    if (options.before !== undefined) q.set("before", String(options.before));
    if (options.after !== undefined) q.set("after", String(options.after));
    if (options.limit !== undefined) q.set("limit", String(options.limit));
    const qs = q.toString();
    const page = historyPageFromJson(await this.call("GET", `/v1/channels/${encodeURIComponent(channelId)}/messages${qs ? `?${qs}` : ""}`));
    if (page.channel_id === "") page.channel_id = channelId;
    return page;
  }

  async markRead(channelId: string, upToSeq: number): Promise<{ last_read_seq: number; unread_count: number }> {
    const body = await this.call("POST", `/v1/channels/${encodeURIComponent(channelId)}/read`, { up_to_seq: upToSeq });
    const b = isObject(body) ? body : {};
    return {
      last_read_seq: typeof b.last_read_seq === "number" ? b.last_read_seq : upToSeq,
      unread_count: typeof b.unread_count === "number" ? b.unread_count : 0,
    };
  }

  async listDevices(): Promise<Device[]> {
    const body = await this.call("GET", "/v1/devices");
    if (!isObject(body) || !Array.isArray(body.devices)) throw badResponse("devices");
    return body.devices.map(deviceFromJson);
  }

  async registerDevice(input: { device_id: string; name?: string; platform?: string; push?: PushSubscriptionInput | null }): Promise<Device> {
    return deviceFromJson(await this.call("POST", "/v1/devices", input));
  }

  async updateDevice(deviceId: string, patch: { name?: string; platform?: string; push?: PushSubscriptionInput | null }): Promise<Device> {
    return deviceFromJson(await this.call("PATCH", `/v1/devices/${encodeURIComponent(deviceId)}`, patch));
  }

  async pushConfig(): Promise<PushConfig> {
    const body = await this.call("GET", "/v1/push/config");
    if (!isObject(body) || typeof body.vapid_public_key !== "string" || !Array.isArray(body.providers)) throw badResponse("push config");
    return { vapid_public_key: body.vapid_public_key, providers: body.providers.filter((p): p is PushProvider => typeof p === "string") as PushProvider[] };
  }

  async muteChannel(channelId: string, muted: boolean): Promise<ChannelState> {
    const body = await this.call("PATCH", `/v1/me/channels/${encodeURIComponent(channelId)}`, { muted });
    if (!isObject(body) || !isObject(body.channel)) throw badResponse("channel");
    return channelStateFromJson(body.channel);
  }

  async removeDevice(deviceId: string): Promise<void> {
    await this.call("DELETE", `/v1/devices/${encodeURIComponent(deviceId)}`);
  }

  async listSessions(): Promise<SessionInfo[]> {
    const body = await this.call("GET", "/v1/sessions");
    if (!isObject(body) || !Array.isArray(body.sessions)) throw badResponse("sessions");
    return body.sessions.map(sessionInfoFromJson);
  }

  async endSession(sessionId: string): Promise<void> {
    await this.call("DELETE", `/v1/sessions/${encodeURIComponent(sessionId)}`);
  }

  async endOtherSessions(): Promise<number> {
    const body = await this.call("POST", "/v1/sessions/logout-others");
    return isObject(body) && typeof body.signed_out === "number" ? body.signed_out : 0;
  }
}

function badResponse(what: string): EdgechatError {
  return new EdgechatError({ code: "bad_response", message: `The server's answer has no ${what} list.` });
}

/** `https://host/base` → REST base (no trailing slash) and the WebSocket connect URL. */
export function endpoints(url: string): { rest: string; socket: string } {
  const u = new URL(url);
  const scheme = u.protocol === "ws:" ? "http:" : u.protocol === "wss:" ? "https:" : u.protocol;
  if (scheme !== "http:" && scheme !== "https:") {
    throw new EdgechatError({ code: "invalid_argument", message: `url must be http(s):// or ws(s)://, got "${u.protocol}".` });
  }
  const path = u.pathname.replace(/\/+$/, "").replace(/\/v1\/connect$/, "");
  const rest = `${scheme}//${u.host}${path}`;
  const socket = `${scheme === "https:" ? "wss:" : "ws:"}//${u.host}${path}/v1/connect`;
  return { rest, socket };
}
