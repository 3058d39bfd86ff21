/**
 * Server frames carry many messages (DELIVER batches, RESUME gaps, HISTORY_PAGE); each must still
 * fit LIMITS.maxFrameBytes, which clients enforce on what they receive. One message always fits:
 * content is capped at maxContentBytes, half the frame limit.
 *
 * On protobuf sockets a message is sized by its encoded length (exact); on JSON sockets, and
 * where the encoding is not known yet (a history page leaves the channel before anyone knows
 * which socket takes it), by an upper bound from its content's JSON.
 */
import { pb, utf8Length } from "./codec.js";
import { LIMITS, type Encoding } from "./limits.js";

/** Bytes a frame full of messages may use, leaving room for the frame's own fields. */
export const MESSAGES_BYTE_BUDGET = LIMITS.maxFrameBytes - 16 * 1024;

/** Ids, clocks, field tags: generous, so the estimate errs on the safe side. */
const PER_MESSAGE_OVERHEAD = 512;
/** A repeated message field in protobuf: its tag and its length prefix (≤ 5 bytes for any frame). */
const PROTO_FIELD_OVERHEAD = 6;

/**
 * One message's size on the wire: exact on protobuf sockets, an upper bound otherwise (in either
 * encoding, so it also serves callers that do not know the socket yet).
 */
export function messageWireSize(m: { content?: unknown }, encoding?: Encoding): number {
  if (encoding === "proto") return PROTO_FIELD_OVERHEAD + pb.ChatMessage.encode(m as Parameters<typeof pb.ChatMessage.encode>[0]).finish().length;
  return PER_MESSAGE_OVERHEAD + utf8Length(JSON.stringify(m.content ?? {}));
}

/**
 * Splits messages, in order, into runs that each fit `budget` bytes when written to a socket of
 * `encoding` (undefined: sized for either encoding).
 */
export function chunkMessages<T extends { content?: unknown; reactions?: unknown[] }>(messages: T[], budget = MESSAGES_BYTE_BUDGET, encoding?: Encoding): T[][] {
  if (messages.length === 0) return [];
  // Most batches are a few short messages: when even the upper bound of their sizes fits, they go
  // in one frame without encoding each just to measure it (the bound holds in either encoding).
  if (encoding === "proto" && fitsByBound(messages, budget)) return [messages];
  const chunks: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const m of messages) {
    const s = messageWireSize(m, encoding);
    if (current.length > 0 && size + s > budget) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(m);
    size += s;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/**
 * Whether `messages` surely fit `budget` by the upper bound of each one's size (stops as soon as
 * they may not). Reactions are not in the bound: a message that has some is sized exactly.
 */
function fitsByBound(messages: { content?: unknown; reactions?: unknown[] }[], budget: number): boolean {
  let size = 0;
  for (const m of messages) {
    if (m.reactions?.length) return false;
    size += messageWireSize(m);
    if (size > budget) return false;
  }
  return true;
}
