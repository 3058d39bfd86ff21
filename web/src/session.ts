/**
 * The signed-in session, shared by every tab of the browser profile through localStorage.
 *
 * Refresh tokens rotate: each use returns a new one, and presenting a used one again makes the
 * server revoke the whole session. Every tab runs its own client, and each client refreshes on
 * its own schedule with the token it holds in memory, which another tab may already have used.
 * So the app hands the SDK a `fetch` that serialises refreshes across tabs (a Web Lock) and
 * always presents the newest token, storing the rotated one before the lock is released. The
 * tabs then share one unbroken token chain.
 *
 * "The newest token" is read from a `TokenChain` (IndexedDB, token-chain.ts) when there is one,
 * and from localStorage otherwise. localStorage alone is not enough: Chromium keeps a copy of it
 * in each renderer process and tells the others of a write later, so a tab that takes the lock
 * just after another tab rotated the token can still read the used one, present it, and get the
 * whole session revoked (the HTML standard leaves localStorage across processes undefined).
 * IndexedDB has one backend that orders its transactions: a read begun after a write committed
 * sees it. localStorage still carries the session itself, for boot and for the `storage` event
 * that tells the other tabs of a sign-out.
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

/** Where every tab of the profile reads the same newest refresh token (see the module comment). */
export interface TokenChain {
  newest(userId: string): Promise<string | undefined>;
  /** Resolves once the token is stored where every tab will read it. */
  advance(userId: string, token: string): Promise<void>;
  forget(): Promise<void>;
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
  chain?: TokenChain,
): FetchLike {
  /** Stores a new session or rotated token: in the chain first, then in localStorage. */
  const keep = async (res: BufferedResponse): Promise<void> => {
    const session = sessionFrom(res);
    if (!session) return;
    if (chain) {
      // A chain left behind would hand out a token older than localStorage's: drop it instead.
      await chain.advance(session.user_id, session.refresh_token).catch(() => chain.forget().catch(() => {}));
    }
    store.save(session);
  };
  const newest = async (userId: string, stored: string): Promise<string> => {
    if (!chain) return stored;
    return (await chain.newest(userId).catch(() => undefined)) ?? stored;
  };
  return async (url, init) => {
    const path = AUTH_PATHS.find((p) => new URL(url).pathname.endsWith(p));
    if (path === undefined || init?.method !== "POST") return base(url, init);
    if (path === "/v1/auth/login" || path === "/v1/auth/register") {
      const res = await buffered(base(url, init));
      await keep(res);
      return res;
    }
    const run = async (): Promise<FetchResponse> => {
      const body = parseBody(init);
      const latest = store.get();
      const me = currentUser();
      const sameUser = latest !== undefined && (me === undefined || latest.user_id === me);
      if (body && latest && sameUser && typeof body.refresh_token === "string") {
        const head = await newest(latest.user_id, latest.refresh_token);
        if (head !== body.refresh_token) body.refresh_token = head;
      }
      const next: FetchInit = body ? { ...init, body: JSON.stringify(body) } : init;
      const res = await buffered(base(url, next));
      if (path === "/v1/auth/refresh") await keep(res);
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

/** The session a successful login, register or refresh answered with. */
function sessionFrom(res: BufferedResponse): StoredSession | undefined {
  if (!res.ok) return undefined;
  try {
    const v = JSON.parse(res.body) as Record<string, unknown>;
    if (typeof v.user_id === "string" && typeof v.refresh_token === "string" && v.refresh_token !== "") {
      return {
        user_id: v.user_id,
        username: typeof v.username === "string" ? v.username : "",
        display_name: typeof v.display_name === "string" ? v.display_name : "",
        refresh_token: v.refresh_token,
      };
    }
  } catch {
    // Not JSON: the SDK reports the failure.
  }
  return undefined;
}
