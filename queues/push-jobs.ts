/**
 * The push queue's message: one job = one push to one device, carrying everything the provider
 * call needs, so the consumer never has to ask the UserObject first. Producer side: `sendPushJobs`.
 */
import type { PushPayload, PushSubscriptionInput } from "../protocol/push.js";
import { parseSubscription } from "../durable-objects/user/push-subscriptions.js";
import { log } from "../shared/log.js";
import { traced, traceOf } from "../shared/trace.js";

export interface PushJob {
  v: 1;
  user_id: string;
  device_id: string;
  subscription: PushSubscriptionInput;
  payload: PushPayload;
  /** ms since the epoch when the push was decided; jobs older than PUSH_MAX_AGE_SECONDS are dropped. */
  created_at: number;
  /** The trace id of the SEND whose message this push is about (shared/trace.ts); the consumer's log lines carry it. */
  trace_id?: string;
}

/** Queue limits (Cloudflare Queues): a message ≤ 128 KB, a sendBatch ≤ 100 messages and 256 KB. */
export const MAX_JOB_BYTES = 128_000 - 1_000;
export const MAX_BATCH_MESSAGES = 100;
const MAX_BATCH_BYTES = 256_000 - 10_000;

/**
 * Sends jobs in batches within the queue's limits. A job that would not fit (it cannot happen with
 * capped previews, but a bug must not poison a whole batch) is dropped with a log line.
 */
export async function sendPushJobs(queue: Queue<PushJob>, jobs: PushJob[]): Promise<void> {
  let batch: MessageSendRequest<PushJob>[] = [];
  let bytes = 0;
  const flush = async () => {
    if (batch.length > 0) await queue.sendBatch(batch);
    batch = [];
    bytes = 0;
  };
  for (const job of jobs) {
    const size = new TextEncoder().encode(JSON.stringify(job)).byteLength;
    if (size > MAX_JOB_BYTES) {
      log("error", "push.job_too_large", { object: "user", user_id: job.user_id, device_id: job.device_id, bytes: size, ...traced(job.trace_id) });
      continue;
    }
    if (batch.length === MAX_BATCH_MESSAGES || bytes + size > MAX_BATCH_BYTES) await flush();
    batch.push({ body: job, contentType: "json" });
    log("debug", "push.enqueued", { object: "user", user_id: job.user_id, device_id: job.device_id, type: job.payload.type, channel_id: job.payload.channel_id, ...traced(job.trace_id) });
    bytes += size;
  }
  await flush();
}

/** Narrows a queue body; undefined for anything that is not a well-formed job. */
export function parsePushJob(body: unknown): PushJob | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const j = body as Record<string, unknown>;
  if (j.v !== 1 || typeof j.user_id !== "string" || typeof j.device_id !== "string" || typeof j.created_at !== "number") return undefined;
  const subscription = parseSubscription(j.subscription);
  const payload = parsePayload(j.payload);
  if (!subscription || !payload) return undefined;
  return { v: 1, user_id: j.user_id, device_id: j.device_id, subscription, payload, created_at: j.created_at, ...traced(traceOf(j)) };
}

function parsePayload(input: unknown): PushPayload | undefined {
  if (typeof input !== "object" || input === null) return undefined;
  const p = input as Record<string, unknown>;
  if (p.v !== 1 || typeof p.channel_id !== "string") return undefined;
  if (p.type === "clear" && typeof p.read_seq === "number") return p as unknown as PushPayload;
  if (p.type === "message" && typeof p.seq === "number" && typeof p.count === "number"
    && typeof p.sender_name === "string" && typeof p.channel_name === "string"
    && (p.preview === undefined || typeof p.preview === "string")) {
    return p as unknown as PushPayload;
  }
  return undefined;
}
