/**
 * Which device this browser is. A browser profile is one device, whatever the number of tabs:
 * its id lives in localStorage and every tab uses it, while only one tab at a time holds the
 * device's socket (tabs.ts). So tabs never count against the account's 10 devices, and closed
 * tabs do not pile up in the devices list.
 *
 * Earlier versions made every tab its own device from a small per-profile pool
 * (`edgechat.devices`). The pool's first id was the profile's first tab's, so it becomes the
 * profile's device (same outbox, same delivery cursor); the others are removed from the account
 * once, after sign-in.
 *
 * A browser without Web Locks or BroadcastChannel cannot share one socket between tabs, so each
 * tab there is its own device again, remembered in sessionStorage for reloads.
 */

export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** localStorage: this profile's device id. */
export const DEVICE_KEY = "edgechat.device";
/** localStorage: the per-tab ids earlier versions minted. */
export const LEGACY_POOL_KEY = "edgechat.devices";
/** sessionStorage: a tab's own device where tabs cannot share one. */
export const TAB_DEVICE_KEY = "edgechat.tab-device";
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** The profile's device id: the stored one, else the first of an earlier version's pool, else a new one. */
export function profileDeviceId(local: KeyValueStore, newId: () => string = randomDeviceId): string {
  const stored = local.getItem(DEVICE_KEY);
  if (stored !== null && DEVICE_ID.test(stored)) return stored;
  const id = readPool(local)[0] ?? newId();
  local.setItem(DEVICE_KEY, id);
  return id;
}

/** Devices an earlier version made for other tabs of this profile (everything in the pool but `keep`). */
export function legacyDeviceIds(local: KeyValueStore, keep: string): string[] {
  return readPool(local).filter((id) => id !== keep);
}

export function forgetLegacyDevices(local: KeyValueStore): void {
  local.removeItem(LEGACY_POOL_KEY);
}

/** Where tabs cannot share a device: this tab's own, kept across reloads of the tab. */
export function tabDeviceId(session: KeyValueStore, newId: () => string = randomDeviceId): string {
  const own = session.getItem(TAB_DEVICE_KEY);
  if (own !== null && DEVICE_ID.test(own)) return own;
  const id = newId();
  session.setItem(TAB_DEVICE_KEY, id);
  return id;
}

function readPool(local: KeyValueStore): string[] {
  try {
    const value: unknown = JSON.parse(local.getItem(LEGACY_POOL_KEY) ?? "[]");
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string" && DEVICE_ID.test(v)) : [];
  } catch {
    return [];
  }
}

/** "web-" and 12 random base-36 characters. */
export function randomDeviceId(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return `web-${Array.from(bytes, (b) => (b % 36).toString(36)).join("")}`;
}
