import { isUserId } from "../shared/ids.js";

/**
 * The erasure queue's message (docs/decisions/020): it names the user and nothing else. The job's
 * state lives in the user's UserObject (durable-objects/user/erasure.ts); a message only says
 * "run the next steps", so a duplicate is harmless and a lost one is re-sent by the object's alarm.
 */
export interface ErasureMessage {
  v: 1;
  user_id: string;
}

/** Asks for the next steps of `userId`'s erasure. */
export async function sendErasureMessage(queue: Queue<ErasureMessage>, userId: string, delaySeconds = 0): Promise<void> {
  await queue.send({ v: 1, user_id: userId }, { contentType: "json", ...(delaySeconds > 0 ? { delaySeconds } : {}) });
}

/** Narrows a queue body; undefined for anything that is not a well-formed message. */
export function parseErasureMessage(body: unknown): ErasureMessage | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const m = body as Record<string, unknown>;
  if (m.v !== 1 || !isUserId(m.user_id)) return undefined;
  return { v: 1, user_id: m.user_id };
}
