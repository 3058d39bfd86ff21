/**
 * Expected failures are values, not exceptions: every RPC method and handler returns
 * `Failure` for them, and one function per edge turns a Failure into an ERROR frame or a JSON
 * response. Throw only for bugs.
 */
import { ERROR_CODES, type ErrorCode } from "../protocol/errors.js";

export type { ErrorCode };

export interface Failure {
  ok: false;
  code: ErrorCode;
  message: string;
  retryable: boolean;
  backoffHintMs?: number;
  /** The users a refusal is about (e.g. who could not be added to a group). */
  userIds?: string[];
}

export type Result<T extends object = object> = ({ ok: true } & T) | Failure;

/** A Failure with the retry flag every caller would otherwise have to remember. */
export function fail(code: ErrorCode, message: string, backoffHintMs?: number): Failure {
  const f: Failure = { ok: false, code, message, retryable: ERROR_CODES[code].retryable };
  if (backoffHintMs !== undefined) f.backoffHintMs = backoffHintMs;
  return f;
}

export function httpStatus(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}

/** The JSON body of every REST error. */
export function errorBody(f: Failure): { code: ErrorCode; message: string; retryable: boolean; backoff_hint_ms?: number; user_ids?: string[] } {
  const body: { code: ErrorCode; message: string; retryable: boolean; backoff_hint_ms?: number; user_ids?: string[] } = { code: f.code, message: f.message, retryable: f.retryable };
  if (f.backoffHintMs !== undefined) body.backoff_hint_ms = f.backoffHintMs;
  if (f.userIds !== undefined) body.user_ids = f.userIds;
  return body;
}

export function errorResponse(f: Failure): Response {
  return Response.json(errorBody(f), { status: httpStatus(f.code) });
}

/**
 * Platform errors that cross an RPC boundary carry `retryable`/`overloaded`. Retry only
 * retryable && !overloaded: an overloaded object gets worse with every retry.
 */
export function isRetryablePlatformError(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const e = error as { retryable?: unknown; overloaded?: unknown };
  return e.retryable === true && e.overloaded !== true;
}

/** Maps an unexpected exception (a platform failure, a bug) to a retryable Failure. */
export function failureFromException(error: unknown): Failure {
  const e = error as { overloaded?: unknown; name?: unknown; code?: unknown; message?: unknown } | null;
  // An object that refused to serve from the wrong jurisdiction (durable-objects/placement.ts).
  if (typeof e === "object" && e !== null && e.code === "misplaced" && typeof e.message === "string") return fail("misplaced", e.message);
  if (typeof e === "object" && e !== null && e.name === "DeadlineError") {
    return fail("unavailable", "Part of the service did not answer in time; retry shortly.", 1000);
  }
  if (typeof e === "object" && e !== null && e.overloaded === true) {
    return fail("unavailable", "The service is overloaded; retry shortly.", 1000);
  }
  return fail("internal", "Something went wrong on our side; retry shortly.", 500);
}
