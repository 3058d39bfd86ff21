/**
 * Every failure the SDK reports — a rejected promise or an `error` event — is an EdgechatError
 * carrying the server's error code (docs/protocol.md) or one of the SDK's own.
 */
import type { ErrorCode as ServerErrorCode } from "../protocol/errors.js";

export type { ServerErrorCode };

/** Codes from the server (protocol/errors.ts, docs/protocol.md) plus the SDK's own. */
export type ErrorCode =
  | ServerErrorCode
  // SDK codes:
  | "network_error"   // fetch failed or the socket dropped before an answer
  | "timeout"         // no answer within requestTimeoutMs
  | "disconnected"    // disconnect() was called while the request was pending
  | "replaced"        // another connection of this device took over (close 4409)
  | "discarded"       // outbox.discard() removed a pending send
  | "gap_unfillable"  // the server kept not returning missing seqs; the client skipped them
  | "storage_error"   // the outbox storage adapter failed
  | "bad_response"    // the server answered something the SDK cannot read
  | "aborted"         // an upload was cancelled with its AbortSignal
  | (string & {});

export interface EdgechatErrorInit {
  code: ErrorCode;
  message: string;
  retryable?: boolean;
  backoffHintMs?: number;
  /** HTTP status, for REST failures. */
  status?: number;
  requestId?: number;
  channelId?: string;
  clientMsgId?: string;
  /** The server's trace id for the failed request or frame: quote it in a bug report. */
  traceId?: string;
}

/**
 * @example
 * try {
 *   await client.send(channelId, "hi");
 * } catch (err) {
 *   if (err instanceof EdgechatError && err.code === "not_member") showJoinPrompt();
 * }
 */
export class EdgechatError extends Error {
  readonly code: ErrorCode;
  /** Retrying the same request later may succeed. */
  readonly retryable: boolean;
  readonly backoffHintMs: number | undefined;
  readonly status: number | undefined;
  readonly requestId: number | undefined;
  readonly channelId: string | undefined;
  readonly clientMsgId: string | undefined;
  readonly traceId: string | undefined;

  constructor(init: EdgechatErrorInit) {
    super(init.message);
    this.name = "EdgechatError";
    this.code = init.code;
    this.retryable = init.retryable ?? false;
    this.backoffHintMs = init.backoffHintMs;
    this.status = init.status;
    this.requestId = init.requestId;
    this.channelId = init.channelId;
    this.clientMsgId = init.clientMsgId;
    this.traceId = init.traceId;
  }
}

/** Token problems are fixed by refreshing, not by failing the request. */
export function isAuthCode(code: string): boolean {
  return code === "unauthorized" || code === "token_expired";
}

/**
 * The session was signed out (a logout, "sign out this device" elsewhere, a reused refresh token):
 * refreshing cannot fix it and logging back in by itself would undo what the user asked for.
 */
export function isSignedOutCode(code: string): boolean {
  return code === "session_revoked";
}
