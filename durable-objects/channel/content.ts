/**
 * What a client may put in a message. The ChannelObject is the one place that checks it, so every
 * path (WebSocket SEND, a future REST send) enforces the same rules.
 */
import { fail, type Result } from "../../shared/errors.js";
import { utf8Length } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { describeLoneSurrogate, isWellFormed } from "../../protocol/text.js";
import type { ContentInit } from "./types.js";

/** `system` and `update` are written by the server only. */
export type ContentKind = "text" | "attachment" | "encrypted" | "system" | "update";

export function validateClientContent(content: unknown): Result<{ content: ContentInit; kind: ContentKind }> {
  if (typeof content !== "object" || content === null) {
    return fail("invalid_argument", "content is required: {text: {text: \"...\"}}.");
  }
  const c = content as Record<string, unknown>;
  const bodies = ["text", "attachment", "system", "encrypted", "update"].filter((k) => c[k] !== undefined && c[k] !== null);
  if (bodies.length !== 1) return fail("invalid_argument", "content must carry exactly one of text, attachment, encrypted.");
  if (bodies[0] === "system" || bodies[0] === "update") return fail("forbidden", `${bodies[0]} messages are written by the server only.`);
  if (bodies[0] !== "text") return fail("not_implemented", `${bodies[0]} messages arrive in a later edgechat release.`);
  const text = (c.text as { text?: unknown }).text;
  if (typeof text !== "string" || text.length === 0) return fail("invalid_argument", "content.text.text must be a non-empty string.");
  // The edges refuse this already; checked again here because every path that stores text ends here.
  if (!isWellFormed(text)) return fail("invalid_text", `Text must be well-formed Unicode: content.text.text holds ${describeLoneSurrogate(text)}.`);
  const bytes = utf8Length(text);
  if (bytes > LIMITS.maxContentBytes) {
    return fail("content_too_large", `Message text is ${bytes} bytes; the limit is ${LIMITS.maxContentBytes}.`);
  }
  return { ok: true, content: { text: { text } }, kind: "text" };
}

/** client_msg_id: the client's idempotency key, normally a UUID. */
export function validClientMsgId(id: unknown): id is string {
  return typeof id === "string" && id.length >= 1 && id.length <= LIMITS.maxClientMsgIdLength && /^[\x21-\x7e]+$/.test(id);
}

/**
 * A reaction is one short emoji sequence (ZWJ sequences, skin tones and flags included) or a
 * Slack-style :shortcode:; no whitespace or control characters, at most LIMITS.maxEmojiLength
 * UTF-16 units.
 */
export function validEmoji(emoji: unknown): emoji is string {
  if (typeof emoji !== "string" || emoji.length < 1 || emoji.length > LIMITS.maxEmojiLength || !isWellFormed(emoji)) return false;
  if (/^:[a-z0-9_+-]+:$/.test(emoji)) return true;
  return !/[\s\p{Cc}]/u.test(emoji) && /[^\x00-\x7f]/.test(emoji);
}
