/**
 * Devices' push subscriptions, stored on the device's row in the UserObject (`devices.push_provider`
 * holds the type, `devices.push_token` the subscription as JSON). The schema here is the one shape
 * check for subscriptions: the REST edge validates with it, and so does everything that reads one
 * back (a queue job, an old row).
 */
import * as z from "zod/mini";
import type { DevicePushState, PushSubscriptionInput } from "../../protocol/push.js";

const base64url = (bytes: number, what: string) =>
  z.string().check(z.regex(/^[A-Za-z0-9_-]+={0,2}$/, `${what} must be base64url`), z.refine((s) => decodedLength(s) === bytes, `${what} must be ${bytes} bytes`));

function decodedLength(b64: string): number {
  const s = b64.replace(/=+$/, "");
  return Math.floor((s.length * 3) / 4);
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * Push subscription shapes. Web Push endpoints must be https (RFC 8030); `allowHttpLoopback`
 * (PUSH_ALLOW_HTTP_LOOPBACK, local development and tests) also admits http://127.0.0.1 and
 * http://localhost, where the fake push services run.
 */
export function pushSubscriptionSchema(opts: { allowHttpLoopback: boolean }) {
  return opts.allowHttpLoopback ? (withLoopback ??= buildSchema(true)) : (httpsOnly ??= buildSchema(false));
}

// Built once per isolate: every queue job is parsed with one.
let withLoopback: ReturnType<typeof buildSchema> | undefined;
let httpsOnly: ReturnType<typeof buildSchema> | undefined;

function buildSchema(allowHttpLoopback: boolean) {
  const opts = { allowHttpLoopback };
  const endpoint = z.string().check(z.maxLength(1024), z.refine((s: string) => {
    let url: URL;
    try { url = new URL(s); } catch { return false; }
    if (url.username || url.password) return false;
    if (url.protocol === "https:") return true;
    return opts.allowHttpLoopback && url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname);
  }, opts.allowHttpLoopback ? "endpoint must be an https URL (or http on loopback)" : "endpoint must be an https URL"));
  return z.discriminatedUnion("type", [
    z.object({
      type: z.literal("webpush"),
      endpoint,
      keys: z.object({ p256dh: base64url(65, "keys.p256dh"), auth: base64url(16, "keys.auth") }),
    }),
    z.object({ type: z.literal("fcm"), token: z.string().check(z.regex(/^[\x21-\x7e]{1,4096}$/, "token must be 1-4096 printable ASCII characters")) }),
    z.object({
      type: z.literal("apns"),
      token: z.string().check(z.regex(/^[0-9a-fA-F]{64,200}$/, "token must be the device token in hex")),
      topic: z.string().check(z.regex(/^[A-Za-z0-9.-]{1,200}$/, "topic must be the app's bundle id")),
      sandbox: z.optional(z.boolean()),
    }),
  ]);
}

/** Whether the environment admits http://127.0.0.1 push endpoints (never in production). */
export function allowHttpLoopback(env: { PUSH_ALLOW_HTTP_LOOPBACK?: string }): boolean {
  return env.PUSH_ALLOW_HTTP_LOOPBACK === "true";
}

/** A subscription read back from storage or a queue job: `undefined` when it does not parse. */
export function parseSubscription(input: unknown): PushSubscriptionInput | undefined {
  const r = pushSubscriptionSchema({ allowHttpLoopback: true }).safeParse(input);
  return r.success ? (r.data as PushSubscriptionInput) : undefined;
}

/** What identifies a subscription to its provider: a removal names it, so a newer one survives. */
export function subscriptionKey(sub: PushSubscriptionInput): string {
  return sub.type === "webpush" ? sub.endpoint : sub.token;
}

export interface DeviceSubscription {
  deviceId: string;
  subscription: PushSubscriptionInput;
}

/**
 * The devices table's push columns. Callers own the device rows; this only reads and writes
 * their subscriptions.
 */
export class PushSubscriptions {
  /** Read on every missed message: kept in memory, dropped on every change. */
  private cached: DeviceSubscription[] | undefined;

  constructor(private readonly sql: SqlStorage) {}

  /** Whether any device has a subscription (most users without one pay nothing per message). */
  any(): boolean {
    return this.all().length > 0;
  }

  /** Replaces (or with null removes) a device's subscription; the failure count starts over. */
  set(deviceId: string, sub: PushSubscriptionInput | null): void {
    this.sql.exec(
      "UPDATE devices SET push_provider = ?, push_token = ?, push_failures = 0 WHERE device_id = ?",
      sub?.type ?? null, sub ? JSON.stringify(sub) : null, deviceId,
    );
    this.cached = undefined;
  }

  /** The device row is gone (DELETE /v1/devices/{id}). */
  forget(): void {
    this.cached = undefined;
  }

  /** Every device that can be pushed to. */
  all(): DeviceSubscription[] {
    if (this.cached) return this.cached;
    const out: DeviceSubscription[] = [];
    for (const row of this.sql.exec<{ device_id: string; push_token: string }>(
      "SELECT device_id, push_token FROM devices WHERE push_token IS NOT NULL ORDER BY created_at",
    )) {
      const subscription = parseStored(row.push_token);
      if (subscription) out.push({ deviceId: row.device_id, subscription });
    }
    this.cached = out;
    return out;
  }

  /** Per device: the provider and its failure count, for device listings. */
  states(): Map<string, DevicePushState> {
    const out = new Map<string, DevicePushState>();
    for (const row of this.sql.exec<{ device_id: string; push_provider: string; push_failures: number }>(
      "SELECT device_id, push_provider, push_failures FROM devices WHERE push_provider IS NOT NULL",
    )) {
      out.set(row.device_id, { type: row.push_provider as DevicePushState["type"], failures: row.push_failures });
    }
    return out;
  }

  /**
   * The provider said this subscription is gone (404/410). Removes it only if the device still
   * has that very subscription: one registered since then is kept.
   */
  removeIfCurrent(deviceId: string, key: string): boolean {
    const row = this.sql.exec<{ push_token: string | null }>("SELECT push_token FROM devices WHERE device_id = ?", deviceId).toArray()[0];
    const current = row?.push_token ? parseStored(row.push_token) : undefined;
    if (!current || subscriptionKey(current) !== key) return false;
    this.set(deviceId, null);
    return true;
  }

  /** A push to this device was dead-lettered (retries exhausted). */
  recordFailure(deviceId: string, key: string): boolean {
    const row = this.sql.exec<{ push_token: string | null }>("SELECT push_token FROM devices WHERE device_id = ?", deviceId).toArray()[0];
    const current = row?.push_token ? parseStored(row.push_token) : undefined;
    if (!current || subscriptionKey(current) !== key) return false;
    this.sql.exec("UPDATE devices SET push_failures = push_failures + 1 WHERE device_id = ?", deviceId);
    return true;
  }
}

function parseStored(json: string): PushSubscriptionInput | undefined {
  try {
    return parseSubscription(JSON.parse(json));
  } catch {
    return undefined;
  }
}
