/**
 * Every error code the server sends (ERROR frames, REST error bodies), defined once for the
 * server and the SDK: whether retrying the same request later may succeed, and the HTTP status a
 * REST response carries. docs/protocol.md explains each one.
 */
export const ERROR_CODES = {
  /** Not decodable, or the wrong shape. */
  malformed_frame: { status: 400, retryable: false },
  /** A frame over max_frame_bytes. */
  frame_too_large: { status: 413, retryable: false },
  /** A frame type not in the protocol. */
  unknown_frame_type: { status: 400, retryable: false },
  /** A server-to-client frame sent by a client. */
  unexpected_frame: { status: 400, retryable: false },
  /** A field is missing or out of range; the message says which. */
  invalid_argument: { status: 400, retryable: false },
  /** A string is not well-formed Unicode: a lone surrogate, bytes that are not UTF-8 (docs/protocol.md, "Text"). */
  invalid_text: { status: 400, retryable: false },
  /** Content over max_content_bytes, or an attachment over the size cap. */
  content_too_large: { status: 413, retryable: false },
  /** An attachment type the server does not accept. */
  unsupported_media_type: { status: 415, retryable: false },
  /** A bad token: log in again (or refresh, for an access token). */
  unauthorized: { status: 401, retryable: false },
  /** An expired access token: refresh it, then retry. */
  token_expired: { status: 401, retryable: false },
  /** The session was signed out (logout, "sign out this device", a reused refresh token): log in again. */
  session_revoked: { status: 401, retryable: false },
  forbidden: { status: 403, retryable: false },
  /** No longer a member of that channel (someone who never was gets not_found). */
  not_member: { status: 403, retryable: false },
  not_found: { status: 404, retryable: false },
  /** The data of a user pinned to a jurisdiction (eu, fedramp) may not be stored where this would put it (docs/protocol.md, "Data locality"). */
  jurisdiction_conflict: { status: 403, retryable: false },
  /** An object was reached in a jurisdiction other than the one its data belongs to: a routing fault on our side, refused rather than served from the wrong place. */
  misplaced: { status: 500, retryable: false },
  conflict: { status: 409, retryable: false },
  /** A DM from before the locality policy, now read-only: the message names the conversation to send to (docs/protocol.md, "Data locality"). */
  conversation_moved: { status: 409, retryable: false },
  username_taken: { status: 409, retryable: false },
  too_many_devices: { status: 409, retryable: false },
  not_implemented: { status: 501, retryable: false },
  /** Slow down; `backoff_hint_ms` says for how long. */
  rate_limited: { status: 429, retryable: true },
  /** A transient failure (an overloaded or restarting object). */
  unavailable: { status: 503, retryable: true },
  internal: { status: 500, retryable: true },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

/** A code the server sends. */
export type ErrorCode = keyof typeof ERROR_CODES;

