/**
 * Boot: claim this tab's device id, resume the stored session or show the sign-in screen, and
 * hand over to the App.
 */
import { createClient, EdgechatError, indexedDbStorage, type EdgechatClient, type FetchLike, type User } from "../../client/index.js";
import { App, errorText } from "./app.js";
import { claimDeviceId, type LockManagerLike } from "./device.js";
import { SESSION_KEY, SessionStore, sharedSessionFetch, type ExclusiveLocks } from "./session.js";
import { renderLogin } from "./views/login.js";

const root = document.getElementById("root")!;
const store = new SessionStore(localStorage);
const locks = (navigator as { locks?: LockManagerLike & ExclusiveLocks }).locks;
let app: App | undefined;
let userId: string | undefined;

const deviceId = await claimDeviceId({ local: localStorage, session: sessionStorage, ...(locks ? { locks } : {}) });

function makeClient(refreshToken?: string): EdgechatClient {
  const fetchImpl: FetchLike = (url, init) => fetch(url, init);
  return createClient({
    url: location.origin,
    deviceId,
    ...(refreshToken ? { refreshToken } : {}),
    fetch: sharedSessionFetch(fetchImpl, store, locks, () => userId),
    // Unsent messages survive a reload; one database per device, so tabs never share entries.
    storage: indexedDbStorage({ name: `edgechat-outbox-${deviceId}` }),
    // Notice a dead socket within half a minute.
    heartbeatIntervalMs: 15_000,
  });
}

function startApp(client: EdgechatClient, me: User): void {
  userId = me.user_id;
  app = new App(root, client, me, {
    signedOut: (reason) => {
      app?.stop();
      app = undefined;
      userId = undefined;
      store.clear();
      showLogin(reason);
    },
  });
  app.start();
}

function showLogin(notice?: string): void {
  document.title = "Sign in · edgechat";
  renderLogin(root, async ({ mode, username, password, displayName }) => {
    const client = makeClient();
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
  startApp(makeClient(stored.refresh_token), { user_id: stored.user_id, username: stored.username, display_name: stored.display_name });
} else {
  showLogin();
}
