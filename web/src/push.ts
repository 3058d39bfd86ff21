/**
 * Web push for the web app: subscribe this browser (Service Worker + PushManager with the
 * server's VAPID key) and store the subscription on this device (`PATCH /v1/devices/{id}`).
 * Permission is asked for only after a user action: the switch in Settings, or the offer that
 * follows the first message sent from this browser. Never on page load.
 */
import type { Device, PushConfig, PushSubscriptionInput } from "../../client/index.js";

const ASKED_KEY = "edgechat-notifications-offered";

/** What this module needs of the SDK: the device's push subscription on the server. */
export interface PushDevices {
  readonly devices: {
    pushConfig(): Promise<PushConfig>;
    register(input: { push: PushSubscriptionInput | null }): Promise<Device>;
  };
}
let listening = false;

export type NotificationState = "on" | "off" | "blocked" | "unsupported";

function supported(): boolean {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** Where this browser stands, without asking anything. */
export async function notificationState(): Promise<NotificationState> {
  if (!supported()) return "unsupported";
  if (Notification.permission === "denied") return "blocked";
  if (Notification.permission !== "granted") return "off";
  const reg = await navigator.serviceWorker.getRegistration("/");
  return (await reg?.pushManager.getSubscription()) ? "on" : "off";
}

function applicationServerKey(base64url: string): Uint8Array<ArrayBuffer> {
  const b64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

async function subscribe(client: PushDevices): Promise<void> {
  const config = await client.devices.pushConfig();
  if (!config.vapid_public_key) throw new Error("This server does not send web notifications.");
  const reg = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  await navigator.serviceWorker.ready;
  let sub = await reg.pushManager.getSubscription();
  // A subscription made with another server key (the server's key changed) cannot be used.
  const key = sub?.options.applicationServerKey;
  if (sub && key && new Uint8Array(key).join() !== applicationServerKey(config.vapid_public_key).join()) {
    await sub.unsubscribe();
    sub = null;
  }
  sub ??= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: applicationServerKey(config.vapid_public_key) });
  const json = sub.toJSON();
  if (!json.endpoint || !json.keys?.p256dh || !json.keys.auth) throw new Error("The browser gave an incomplete push subscription.");
  // POST registers the device if the server does not know it yet, and leaves its name as it is.
  await client.devices.register({ push: { type: "webpush", endpoint: json.endpoint, keys: { p256dh: json.keys.p256dh, auth: json.keys.auth } } });
}

/** Asks for permission (call from a click) and subscribes; returns the resulting state. */
export async function enableNotifications(client: PushDevices): Promise<NotificationState> {
  if (!supported()) return "unsupported";
  localStorage.setItem(ASKED_KEY, "1");
  const permission = await Notification.requestPermission();
  if (permission !== "granted") return permission === "denied" ? "blocked" : "off";
  await subscribe(client);
  return "on";
}

export async function disableNotifications(client: PushDevices): Promise<void> {
  const reg = await navigator.serviceWorker.getRegistration("/");
  await (await reg?.pushManager.getSubscription())?.unsubscribe();
  await client.devices.register({ push: null });
}

/**
 * On start: if this browser already allowed notifications, make sure the server has its current
 * subscription (browsers rotate them). Asks nothing.
 */
export async function syncNotifications(client: PushDevices): Promise<void> {
  if (!supported()) return;
  // A click on a notification while this tab is not yet controlled by the worker arrives as a message.
  if (!listening) {
    listening = true;
    navigator.serviceWorker.addEventListener("message", (e: MessageEvent<{ type?: unknown; channel_id?: unknown }>) => {
      if (e.data?.type === "open" && typeof e.data.channel_id === "string") location.hash = `c/${e.data.channel_id}`;
    });
  }
  if (Notification.permission !== "granted") return;
  await subscribe(client).catch(() => {});
}

/** Whether the one-time offer (after the first message sent from this browser) is due. */
export function notificationOfferDue(): boolean {
  if (!supported() || Notification.permission !== "default" || localStorage.getItem(ASKED_KEY)) return false;
  localStorage.setItem(ASKED_KEY, "1");
  return true;
}
