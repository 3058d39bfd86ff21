/**
 * The signed-in session, shared by every tab of the browser profile through localStorage.
 *
 * Refresh tokens rotate: each use returns a new one, and presenting a used one again makes the
 * server revoke the whole session. Every tab runs its own client, and each client refreshes on
 * its own schedule with the token it holds in memory, which another tab may already have used.
 * So the app hands the SDK a `fetch` that serialises refreshes across tabs (a Web Lock) and
 * always presents the newest token in localStorage, storing the rotated one before the lock is
 * released. The tabs then share one unbroken token chain.
 */
import type { FetchInit, FetchLike, FetchResponse } from "../../client/index.js";
import type { KeyValueStore } from "./device.js";

export const SESSION_KEY = "edgechat.session";

export interface StoredSession {
  user_id: string;
  username: string;
  display_name: string;
  refresh_token: string;
}

/** The slice of `navigator.locks` used here. */
export interface ExclusiveLocks {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}

export class SessionStore {
  constructor(private readonly local: KeyValueStore) {}

  get(): StoredSession | undefined {
    try {
      const v: unknown = JSON.parse(this.local.getItem(SESSION_KEY) ?? "null");
      if (typeof v !== "object" || v === null) return undefined;
      const s = v as Record<string, unknown>;
      if (typeof s.user_id !== "string" || typeof s.refresh_token !== "string" || s.refresh_token === "") return undefined;
      return {
        user_id: s.user_id,
        username: typeof s.username === "string" ? s.username : "",
        display_name: typeof s.display_name === "string" ? s.display_name : "",
        refresh_token: s.refresh_token,
      };
    } catch {
      return undefined;
    }
  }

  save(session: StoredSession): void {
    this.local.setItem(SESSION_KEY, JSON.stringify(session));
  }

  clear(): void {
    this.local.removeItem(SESSION_KEY);
  }
}

const AUTH_PATHS = ["/v1/auth/login", "/v1/auth/register", "/v1/auth/refresh", "/v1/auth/logout"] as const;

/**
 * Wraps `fetch` for the SDK: login and register store the new session, refresh and logout run
 * under a cross-tab lock with the newest stored refresh token (see the module comment).
 */
export function sharedSessionFetch(
  base: FetchLike,
  store: SessionStore,
  locks: ExclusiveLocks | undefined,
  /** This tab's account, once known: another account's stored token is never presented. */
  currentUser: () => string | undefined = () => undefined,
): FetchLike {
  return async (url, init) => {
    const path = AUTH_PATHS.find((p) => new URL(url).pathname.endsWith(p));
    if (path === undefined || init?.method !== "POST") return base(url, init);
    if (path === "/v1/auth/login" || path === "/v1/auth/register") {
      const res = await buffered(base(url, init));
      storeSessionFrom(res, store);
      return res;
    }
    const run = async (): Promise<FetchResponse> => {
      const body = parseBody(init);
      const latest = store.get();
      const me = currentUser();
      const sameUser = latest !== undefined && (me === undefined || latest.user_id === me);
      if (body && latest && sameUser && typeof body.refresh_token === "string" && latest.refresh_token !== body.refresh_token) {
        body.refresh_token = latest.refresh_token;
      }
      const next: FetchInit = body ? { ...init, body: JSON.stringify(body) } : init;
      const res = await buffered(base(url, next));
      if (path === "/v1/auth/refresh") storeSessionFrom(res, store);
      return res;
    };
    return locks ? locks.request("edgechat-auth", run) : run();
  };
}

function parseBody(init: FetchInit): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(typeof init.body === "string" ? init.body : "");
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

interface BufferedResponse extends FetchResponse {
  readonly body: string;
}

/** Reads the body once so both this module and the SDK can look at it. */
async function buffered(pending: Promise<FetchResponse>): Promise<BufferedResponse> {
  const res = await pending;
  const body = await res.text();
  return { status: res.status, ok: res.ok, body, text: () => Promise.resolve(body) };
}

function storeSessionFrom(res: BufferedResponse, store: SessionStore): void {
  if (!res.ok) return;
  try {
    const v = JSON.parse(res.body) as Record<string, unknown>;
    if (typeof v.user_id === "string" && typeof v.refresh_token === "string" && v.refresh_token !== "") {
      store.save({
        user_id: v.user_id,
        username: typeof v.username === "string" ? v.username : "",
        display_name: typeof v.display_name === "string" ? v.display_name : "",
        refresh_token: v.refresh_token,
      });
    }
  } catch {
    // Not JSON: the SDK reports the failure.
  }
}
