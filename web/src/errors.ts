/** SDK and network errors as sentences for the UI. No DOM. */
import { EdgechatError } from "../../client/index.js";

/** An SDK or network error as a sentence for the UI. */
export function errorText(err: unknown): string {
  if (err instanceof EdgechatError) {
    if (err.code === "network_error") return "You're offline or the server can't be reached.";
    if (err.code === "username_taken") return err.message;
    if (err.code === "not_found" && /user/i.test(err.message)) return err.message;
    return err.message || err.code;
  }
  return err instanceof Error ? err.message : String(err);
}

/** The session ended (the sign-in screen is about to show). */
export function isAuthError(err: unknown): boolean {
  return err instanceof EdgechatError && (err.code === "unauthorized" || err.code === "token_expired" || err.code === "session_revoked");
}

/** Why the sign-in screen shows, for a session that ended without this tab asking. */
export function signedOutText(err: unknown): string {
  if (err instanceof EdgechatError && err.code === "session_revoked" && /being deleted/.test(err.message)) return ACCOUNT_DELETED_TEXT;
  return err instanceof EdgechatError && err.code === "session_revoked"
    ? "This browser was signed out (from another device, or because its session was used elsewhere). Sign in again to continue."
    : "Your session has ended. Please sign in again.";
}

/** What the sign-in screen says after the account was deleted (here or on another device). */
export const ACCOUNT_DELETED_TEXT = "Your account is being deleted. You have been signed out everywhere; your messages are being removed.";
