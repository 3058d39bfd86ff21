/**
 * Expected failures are values, not exceptions: every RPC method and handler returns
 * `Failure` for them, and one function per edge turns a Failure into an ERROR frame or a JSON
 * response. Throw only for bugs.
 */
export type ErrorCode =
  | "malformed_frame" | "frame_too_large" | "unknown_frame_type" | "unexpected_frame"
  | "invalid_argument" | "content_too_large"
  | "unauthorized" | "token_expired" | "forbidden" | "not_member"
  | "not_found" | "conflict" | "username_taken" | "too_many_devices"
  | "not_implemented" | "rate_limited" | "unavailable" | "internal";

export interface Failure {
  ok: false;
  code: ErrorCode;
  message: string;
  retryable: boolean;
  backoffHintMs?: number;
}

export type Result<T extends object = object> = ({ ok: true } & T) | Failure;

const STATUS: Record<ErrorCode, number> = {
  malformed_frame: 400, frame_too_large: 413, unknown_frame_type: 400, unexpected_frame: 400,
  invalid_argument: 400, content_too_large: 413,
  unauthorized: 401, token_expired: 401, forbidden: 403, not_member: 403,
  not_found: 404, conflict: 409, username_taken: 409, too_many_devices: 409,
  not_implemented: 501, rate_limited: 429, unavailable: 503, internal: 500,
};

const RETRYABLE: ReadonlySet<ErrorCode> = new Set(["rate_limited", "unavailable", "internal"]);

/** A Failure with the retry flag every caller would otherwise have to remember. */
export function fail(code: ErrorCode, message: string, backoffHintMs?: number): Failure {
  const f: Failure = { ok: false, code, message, retryable: RETRYABLE.has(code) };
  if (backoffHintMs !== undefined) f.backoffHintMs = backoffHintMs;
  return f;
}

export function httpStatus(code: ErrorCode): number {
  return STATUS[code];
}

/** The JSON body of every REST error. */
export function errorBody(f: Failure): { code: ErrorCode; message: string; retryable: boolean; backoff_hint_ms?: number } {
  return f.backoffHintMs === undefined
    ? { code: f.code, message: f.message, retryable: f.retryable }
    : { code: f.code, message: f.message, retryable: f.retryable, backoff_hint_ms: f.backoffHintMs };
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
  const e = error as { overloaded?: unknown } | null;
  if (typeof e === "object" && e !== null && e.overloaded === true) {
    return fail("unavailable", "The service is overloaded; retry shortly.", 1000);
  }
  return fail("internal", "Something went wrong on our side; retry shortly.", 500);
}
