/**
 * Tokens: a short-lived access token (JWT) used by REST and the WebSocket, renewed with a
 * rotating refresh token. Refresh is single-flight: the server rotates the refresh token on every
 * use and revokes the session if an old one is presented again, so two concurrent refreshes would
 * log the user out.
 */
import { EdgechatError, isSignedOutCode } from "./errors.js";
import type { Http } from "./rest.js";
import { needsRefresh } from "./rest.js";
import type { AuthSession, Clock } from "./types.js";
import { sessionFromJson } from "./wire.js";

/** Refresh this long before the access token expires, so a request never leaves with a dying one. */
const EXPIRY_MARGIN_MS = 30_000;

export interface AuthOptions {
  token?: string;
  refreshToken?: string;
  credentials?: { username: string; password: string };
}

export class Auth {
  private accessTokenValue: string | undefined;
  private refreshTokenValue: string | undefined;
  private expiresAt: number | undefined;
  private credentials: { username: string; password: string } | undefined;
  private refreshing: Promise<AuthSession> | undefined;
  private current: AuthSession | undefined;
  private signedOut = false;

  constructor(
    private readonly http: Http,
    private readonly clock: Clock,
    options: AuthOptions,
    private readonly onSession: (session: AuthSession) => void,
    /** The server said the session was signed out; called once per session. */
    private readonly onSignedOut: (err: EdgechatError) => void = () => {},
  ) {
    this.accessTokenValue = options.token;
    this.refreshTokenValue = options.refreshToken;
    this.credentials = options.credentials;
    if (options.token !== undefined) this.expiresAt = jwtExpiry(options.token);
  }

  session(): AuthSession | undefined {
    return this.current ? { ...this.current } : undefined;
  }

  hasAccessToken(): boolean {
    return this.accessTokenValue !== undefined;
  }

  private adopt(session: AuthSession): AuthSession {
    this.signedOut = false;
    this.current = session;
    this.accessTokenValue = session.access_token;
    if (session.refresh_token !== "") this.refreshTokenValue = session.refresh_token;
    this.expiresAt = session.expires_in > 0 ? this.clock.now() + session.expires_in * 1000 : jwtExpiry(session.access_token);
    this.onSession({ ...session });
    return session;
  }

  async register(input: { username: string; password: string; display_name?: string }): Promise<AuthSession> {
    const session = this.adopt(sessionFromJson(await this.http.call("POST", "/v1/auth/register", { body: input })));
    this.credentials ??= { username: input.username, password: input.password };
    return session;
  }

  async login(credentials?: { username: string; password: string }): Promise<AuthSession> {
    const creds = credentials ?? this.credentials;
    if (!creds) throw new EdgechatError({ code: "unauthorized", message: "login() needs {username, password} (or credentials in createClient)." });
    const session = this.adopt(sessionFromJson(await this.http.call("POST", "/v1/auth/login", { body: creds })));
    this.credentials = creds;
    return session;
  }

  /**
   * A new access token. Uses the refresh token; if the server rejects it and credentials are
   * known, logs in again. Concurrent callers share one request.
   */
  refresh(): Promise<AuthSession> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<AuthSession> {
    const refreshToken = this.refreshTokenValue;
    if (refreshToken !== undefined) {
      try {
        return this.adopt(sessionFromJson(await this.http.call("POST", "/v1/auth/refresh", { body: { refresh_token: refreshToken } })));
      } catch (err) {
        if (err instanceof EdgechatError && isSignedOutCode(err.code)) throw this.sessionEnded(err);
        if (!(err instanceof EdgechatError) || err.retryable) throw err;
        // A rotated refresh token is single-use: once rejected it never works again.
        if (this.refreshTokenValue === refreshToken) this.refreshTokenValue = undefined;
        if (!this.credentials) throw err;
      }
    }
    if (this.credentials) return this.login(this.credentials);
    throw new EdgechatError({ code: "unauthorized", message: "The access token expired and there is no refresh token or credentials to renew it." });
  }

  /**
   * The server says this session was signed out. Forget the tokens and the credentials: logging
   * back in on our own would undo a sign-out the user asked for on another device. Returns `err`.
   */
  sessionEnded(err: EdgechatError): EdgechatError {
    this.accessTokenValue = undefined;
    this.refreshTokenValue = undefined;
    this.expiresAt = undefined;
    this.current = undefined;
    this.credentials = undefined;
    if (!this.signedOut) {
      this.signedOut = true;
      this.onSignedOut(err);
    }
    return err;
  }

  /** The server rejected the access token: whatever its expiry says, renew before using it again. */
  invalidate(): void {
    if (this.accessTokenValue !== undefined) this.expiresAt = 0;
  }

  async logout(): Promise<void> {
    const refreshToken = this.refreshTokenValue;
    this.accessTokenValue = undefined;
    this.refreshTokenValue = undefined;
    this.expiresAt = undefined;
    this.current = undefined;
    if (refreshToken !== undefined) await this.http.call("POST", "/v1/auth/logout", { body: { refresh_token: refreshToken } });
  }

  /** An access token that is not about to expire: refreshes or logs in first if needed. */
  /** True when the access token can be used as it is, without asking the server for a new one. */
  hasFreshAccessToken(): boolean {
    return this.accessTokenValue !== undefined && (this.expiresAt === undefined || this.expiresAt - EXPIRY_MARGIN_MS > this.clock.now());
  }

  async accessToken(): Promise<string> {
    const token = this.accessTokenValue;
    if (token !== undefined && this.hasFreshAccessToken()) return token;
    if (token === undefined && this.refreshTokenValue === undefined && this.credentials) return (await this.login()).access_token;
    if (token !== undefined && this.refreshTokenValue === undefined && !this.credentials) return token; // let the server decide
    return (await this.refresh()).access_token;
  }

  /** Runs an authenticated call; on 401 refreshes once and retries. */
  async withToken<T>(call: (token: string) => Promise<T>): Promise<T> {
    const token = await this.accessToken();
    try {
      return await call(token);
    } catch (err) {
      if (err instanceof EdgechatError && isSignedOutCode(err.code)) throw this.sessionEnded(err);
      if (!needsRefresh(err) || !this.canRenew()) throw err;
      // Another caller may have refreshed while this request was in flight.
      const next = this.accessTokenValue !== undefined && this.accessTokenValue !== token ? this.accessTokenValue : (await this.refresh()).access_token;
      return call(next);
    }
  }

  canRenew(): boolean {
    return this.refreshTokenValue !== undefined || this.credentials !== undefined;
  }
}

/** The `exp` claim of a JWT in ms, read without verifying (the server verifies). */
export function jwtExpiry(token: string): number | undefined {
  const part = token.split(".")[1];
  if (part === undefined) return undefined;
  try {
    const json: unknown = JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=")));
    if (typeof json === "object" && json !== null && "exp" in json && typeof json.exp === "number") return json.exp * 1000;
  } catch {
    // Not a JWT we can read: treat it as opaque.
  }
  return undefined;
}
