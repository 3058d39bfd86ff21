/**
 * Server frames carry many messages (DELIVER batches, RESUME gaps, HISTORY_PAGE); each must still
 * fit LIMITS.maxFrameBytes, which clients enforce on what they receive. One message always fits:
 * content is capped at maxContentBytes, half the frame limit.
 */
import { utf8Length } from "./codec.js";
import { LIMITS } from "./limits.js";

/** Bytes a frame full of messages may use, leaving room for the frame's own fields. */
export const MESSAGES_BYTE_BUDGET = LIMITS.maxFrameBytes - 16 * 1024;

/** Ids, clocks, field tags: generous, so the estimate errs on the safe side. */
const PER_MESSAGE_OVERHEAD = 512;

/** An upper bound of one message's encoded size, in either encoding. */
export function messageWireSize(m: { content?: unknown }): number {
  return PER_MESSAGE_OVERHEAD + utf8Length(JSON.stringify(m.content ?? {}));
}

/** Splits messages, in order, into runs that each fit `budget`. */
export function chunkMessages<T extends { content?: unknown }>(messages: T[], budget = MESSAGES_BYTE_BUDGET): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const m of messages) {
    const s = messageWireSize(m);
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
