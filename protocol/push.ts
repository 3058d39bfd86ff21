/**
 * Push notification shapes both sides share: the subscription a device registers
 * (`POST /v1/devices {push}`) and the JSON payload every provider carries to the device.
 * snake_case, like the rest of the wire. See docs/protocol.md, "Push notifications".
 */

/** A browser's Web Push subscription (PushSubscription.toJSON() without expirationTime). */
export interface WebPushSubscription {
  type: "webpush";
  /** The push service's URL for this browser; https. */
  endpoint: string;
  /** base64url: the browser's P-256 public key (65 bytes) and auth secret (16 bytes). */
  keys: { p256dh: string; auth: string };
}

/** An Android (or any FCM) registration token. */
export interface FcmSubscription {
  type: "fcm";
  token: string;
}

/** An iOS device token (hex) and the app's bundle id (the `apns-topic`). */
export interface ApnsSubscription {
  type: "apns";
  token: string;
  topic: string;
  /** Tokens from development builds talk to Apple's sandbox gateway. */
  sandbox?: boolean;
}

export type PushSubscriptionInput = WebPushSubscription | FcmSubscription | ApnsSubscription;
export type PushProvider = PushSubscriptionInput["type"];

/** How a device's push subscription shows in `GET /v1/devices`: never the secrets. */
export interface DevicePushState {
  type: PushProvider;
  /** Pushes to this device that failed for good (dead-lettered) since it last registered. */
  failures: number;
}

/**
 * What a push carries, as JSON. `message`: the newest of `count` messages in the channel that
 * the user has not read; a later push with the same channel replaces it (same collapse key).
 * `clear`: the channel was read on some device; remove its notification.
 */
export type PushPayload = PushMessagePayload | PushClearPayload;

export interface PushMessagePayload {
  v: 1;
  type: "message";
  channel_id: string;
  /** The channel's name as the user sees it (a DM: the other person's name). */
  channel_name: string;
  channel_type: string;
  /** The newest message this push covers. */
  seq: number;
  /** Unread messages this notification stands for (since the channel was last read). */
  count: number;
  sender_user_id: string;
  sender_name: string;
  /** The newest message's text, cut short; absent when the user turned previews off or the content is not plain text. */
  preview?: string;
  /** ms since the epoch of the newest message. */
  sent_at: number;
}

export interface PushClearPayload {
  v: 1;
  type: "clear";
  channel_id: string;
  /** Everything up to this seq was read. */
  read_seq: number;
}

/** Longest preview a push carries, in UTF-16 code units (a Web Push record holds ~3,990 bytes in all). */
export const PUSH_PREVIEW_MAX = 140;

/** What the web app needs to subscribe: `GET /v1/push/config`. */
export interface PushConfig {
  /** base64url uncompressed P-256 point: the `applicationServerKey` for PushManager.subscribe(); "" when Web Push is not configured. */
  vapid_public_key: string;
  providers: PushProvider[];
}
