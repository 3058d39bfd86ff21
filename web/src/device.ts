/**
 * Which device this tab is. Every open tab must be its own device: the server lets one socket
 * per device live and replaces the older one (close 4409), so two tabs sharing an id would keep
 * kicking each other off. A user also has at most 10 devices, so ids must not be minted for every
 * tab ever opened either.
 *
 * So the profile keeps a small pool of ids in localStorage, and each tab claims one that no other
 * open tab holds, with a Web Lock held for the tab's lifetime. The tab remembers its id in
 * sessionStorage, so a reload gets the same device back (and with it the same outbox and
 * delivery cursor). The first tab of a profile always gets the pool's first id: a stable
 * device per browser profile. A duplicated tab copies sessionStorage, but finds that id locked
 * and takes another one.
 */

export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** The slice of `navigator.locks` used here. */
export interface LockManagerLike {
  request(name: string, options: { ifAvailable: true }, callback: (lock: unknown) => Promise<void> | void): Promise<unknown>;
}

export const POOL_KEY = "edgechat.devices";
export const TAB_KEY = "edgechat.device";
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Beyond this many concurrent tabs, ids are still minted but not remembered by the profile. */
const MAX_POOL = 8;

export interface ClaimOptions {
  local: KeyValueStore;
  session: KeyValueStore;
  /** `navigator.locks`; without it (very old browsers) tabs trust sessionStorage alone. */
  locks?: LockManagerLike;
  newId?: () => string;
}

/** Claims this tab's device id (see the module comment). */
export async function claimDeviceId(options: ClaimOptions): Promise<string> {
  const { local, session, locks } = options;
  const newId = options.newId ?? randomDeviceId;
  const pool = readPool(local);
  const own = session.getItem(TAB_KEY);
  const candidates = [...new Set([...(own && DEVICE_ID.test(own) ? [own] : []), ...pool])];

  let chosen: string | undefined;
  if (locks) {
    for (const id of candidates) {
      if (await tryHold(locks, id)) {
        chosen = id;
        break;
      }
    }
  } else {
    // No way to tell which pool ids other tabs use: only this tab's own id is known to be free.
    chosen = own !== null && DEVICE_ID.test(own) ? own : undefined;
  }
  if (chosen === undefined) {
    chosen = newId();
    if (locks) await tryHold(locks, chosen);
    if (pool.length < MAX_POOL && !pool.includes(chosen)) local.setItem(POOL_KEY, JSON.stringify([...pool, chosen]));
  }
  session.setItem(TAB_KEY, chosen);
  return chosen;
}

function readPool(local: KeyValueStore): string[] {
  try {
    const value: unknown = JSON.parse(local.getItem(POOL_KEY) ?? "[]");
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string" && DEVICE_ID.test(v)) : [];
  } catch {
    return [];
  }
}

/** Takes the lock for `id` if free and keeps it until the tab goes away. */
function tryHold(locks: LockManagerLike, id: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    locks
      .request(`edgechat-device:${id}`, { ifAvailable: true }, (lock) => {
        if (lock === null) {
          resolve(false);
          return;
        }
        resolve(true);
        return new Promise<void>(() => {});
      })
      .catch(() => resolve(false));
  });
}

/** "web-" and 12 random base-36 characters. */
export function randomDeviceId(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return `web-${Array.from(bytes, (b) => (b % 36).toString(36)).join("")}`;
}
