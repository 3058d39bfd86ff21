/**
 * Boot: find this profile's device, resume the stored session or show the sign-in screen, and
 * hand over to the App with a client shared by the profile's tabs (tabs.ts).
 */
import { createClient, EdgechatError, indexedDbStorage, memoryStorage, type EdgechatClient, type FetchLike, type User } from "../../client/index.js";
import { App } from "./app.js";
import { forgetLegacyDevices, legacyDeviceIds, profileDeviceId, tabDeviceId } from "./device.js";
import { errorText } from "./errors.js";
import { SESSION_KEY, SessionStore, sharedSessionFetch, type ExclusiveLocks } from "./session.js";
import { TabClient, type TabLocks } from "./tabs.js";
import { indexedDbTokenChain } from "./token-chain.js";
import { renderLogin } from "./views/login.js";

const root = document.getElementById("root")!;
const store = new SessionStore(localStorage);
const chain = indexedDbTokenChain();
const locks = (navigator as { locks?: TabLocks & ExclusiveLocks }).locks;
/** Tabs share one device when they can elect one socket holder and talk to it. */
const shared = locks !== undefined && typeof BroadcastChannel === "function";
const deviceId = shared ? profileDeviceId(localStorage) : tabDeviceId(sessionStorage);
let app: App | undefined;
let userId: string | undefined;

/**
 * A client of this device. Every tab has one for REST; the tab holding the socket makes another
 * with the outbox, kept in IndexedDB so unsent messages survive a reload or a change of tab.
 */
function makeClient(refreshToken: string | undefined, holdsSocket: boolean): EdgechatClient {
  const fetchImpl: FetchLike = (url, init) => fetch(url, init);
  return createClient({
    url: location.origin,
    deviceId,
    ...(refreshToken ? { refreshToken } : {}),
    fetch: sharedSessionFetch(fetchImpl, store, locks, () => userId, chain),
    storage: holdsSocket ? indexedDbStorage({ name: `edgechat-outbox-${deviceId}` }) : memoryStorage(),
    // Notice a dead socket within half a minute.
    heartbeatIntervalMs: 15_000,
  });
}

function startApp(rest: EdgechatClient, me: User): void {
  userId = me.user_id;
  const client = new TabClient({
    deviceId,
    userId: me.user_id,
    rest,
    createSocketClient: () => makeClient(store.get()?.refresh_token, true),
    ...(shared ? { locks, openChannel: (name: string) => new BroadcastChannel(name) } : {}),
  });
  client.start();
  app = new App(root, client, me, {
    signedOut: (reason) => {
      app?.stop();
      app = undefined;
      userId = undefined;
      store.clear();
      void chain?.forget().catch(() => {});
      showLogin(reason);
    },
  });
  app.start();
  if (shared) void retireLegacyDevices(rest);
}

/** Removes the per-tab devices an earlier version registered for this profile, once. */
async function retireLegacyDevices(rest: EdgechatClient): Promise<void> {
  const old = legacyDeviceIds(localStorage, deviceId);
  if (old.length === 0) return;
  for (const id of old) {
    try {
      await rest.devices.remove(id);
    } catch (err) {
      if (!(err instanceof EdgechatError && err.code === "not_found")) return; // offline: try on the next start
    }
  }
  forgetLegacyDevices(localStorage);
}

function showLogin(notice?: string): void {
  document.title = "Sign in · edgechat";
  renderLogin(root, async ({ mode, username, password, displayName }) => {
    const client = makeClient(undefined, false);
    try {
      const session = mode === "register"
        ? await client.register({ username, password, ...(displayName ? { display_name: displayName } : {}) })
        : await client.login({ username, password });
      startApp(client, { user_id: session.user_id, username: session.username, display_name: session.display_name });
    } catch (err) {
      if (err instanceof EdgechatError && err.code === "unauthorized") throw new Error("Wrong username or password.");
      throw new Error(errorText(err));
    }
  }, notice);
}

// Another tab signed out, or signed in as someone else: follow it.
window.addEventListener("storage", (event) => {
  if (event.key !== SESSION_KEY && event.key !== null) return;
  const stored = store.get();
  if (app && (!stored || stored.user_id !== userId)) {
    app.stop();
    app = undefined;
    userId = undefined;
    if (stored) location.reload();
    else showLogin("You signed out in another tab.");
  } else if (!app && stored) {
    location.reload();
  }
});

const stored = store.get();
if (stored) {
  startApp(makeClient(stored.refresh_token, false), { user_id: stored.user_id, username: stored.username, display_name: stored.display_name });
} else {
  showLogin();
}
