/**
 * The push queue's consumer: one provider call per job, all jobs of a batch at once. Each job is
 * acked or retried on its own, so one slow provider never re-sends another's pushes.
 *   sent                 → ack
 *   404/410 (gone)       → the subscription is removed from the user's device, ack
 *   429/5xx, network     → msg.retry({delaySeconds}) with exponential backoff (or Retry-After)
 *   other 4xx, no config → ack, logged (retrying cannot help)
 *   older than max age   → ack, not sent
 *   a retried message push the user has read meanwhile → ack, not sent (no stale notification)
 * Jobs that exhaust max_retries land in the dead-letter queue (push-dead-letters.ts).
 */
import { subscriptionKey } from "../durable-objects/user/push-subscriptions.js";
import { userStub } from "../shared/routing.js";
import { resolveProfiles } from "../workers/api/accounts.js";
import { parsePushJob, type PushJob } from "./push-jobs.js";
import { MAX_RETRY_DELAY_SECONDS, pushSettings, type PushSettings } from "./push-settings.js";
import { sendPush, type Fetch, type SendOutcome } from "./providers/index.js";
import { log } from "../shared/log.js";
import { count } from "../shared/metrics.js";
import { traced } from "../shared/trace.js";

export interface PushBatchStats {
  sent: number;
  removed: number;
  retried: number;
  rejected: number;
  expired: number;
  stale: number;
  invalid: number;
}

export interface ConsumerDeps {
  fetch?: Fetch;
  now?: () => number;
}

/**
 * Exponential backoff for the n-th attempt (1-based): base · 2^(n-1), or the provider's
 * Retry-After when it gave one; at least 1 s, at most MAX_RETRY_DELAY_SECONDS.
 */
export function retryDelaySeconds(attempts: number, baseSeconds: number, retryAfter?: number): number {
  const wanted = retryAfter ?? baseSeconds * 2 ** Math.max(0, attempts - 1);
  return Math.min(MAX_RETRY_DELAY_SECONDS, Math.max(1, Math.ceil(wanted)));
}

export async function consumePushBatch(batch: MessageBatch<unknown>, env: Env, deps: ConsumerDeps = {}): Promise<PushBatchStats> {
  const settings = pushSettings(env);
  const fetcher: Fetch = deps.fetch ?? ((input, init) => fetch(input, init));
  const now = deps.now ?? Date.now;
  const stats: PushBatchStats = { sent: 0, removed: 0, retried: 0, rejected: 0, expired: 0, stale: 0, invalid: 0 };
  const names = await senderNames(batch.messages, env);
  await Promise.all(batch.messages.map((msg) => consumeOne(msg, env, settings, fetcher, now(), stats, names)));
  for (const [outcome, n] of Object.entries(stats)) if (n > 0) count("push.job", n, { outcome });
  if (stats.retried + stats.rejected + stats.invalid + stats.removed > 0) log("info", "push.batch", { object: "queue", queue: batch.queue, ...stats });
  return stats;
}

/**
 * The senders' names, read once per batch from the account directory: channels and user objects
 * keep ids, not names (docs/decisions/013), so a job carries the sender's id and the name is
 * filled in here, as it is now (renames show). A lookup that fails leaves the names empty.
 */
async function senderNames(messages: readonly Message<unknown>[], env: Env): Promise<Map<string, string>> {
  const ids = new Set<string>();
  for (const msg of messages) {
    const job = parsePushJob(msg.body);
    if (job?.payload.type === "message" && job.payload.sender_name === "") ids.add(job.payload.sender_user_id);
  }
  const names = new Map<string, string>();
  if (ids.size === 0) return names;
  try {
    const { found } = await resolveProfiles(env, [...ids]);
    for (const p of found) names.set(p.user_id, p.display_name || p.username);
  } catch (err) {
    log("warn", "push.names_failed", { object: "queue", ids: ids.size }, err);
  }
  return names;
}

async function consumeOne(msg: Message<unknown>, env: Env, settings: PushSettings, fetcher: Fetch, now: number, stats: PushBatchStats, names: Map<string, string>): Promise<void> {
  const parsed = parsePushJob(msg.body);
  const job = parsed?.payload.type === "message" && parsed.payload.sender_name === "" && names.has(parsed.payload.sender_user_id)
    ? withSenderName(parsed, names.get(parsed.payload.sender_user_id)!)
    : parsed;
  if (!job) {
    stats.invalid++;
    log("error", "push.job_invalid", { object: "queue", id: msg.id });
    msg.ack();
    return;
  }
  if (now - job.created_at > settings.maxAgeMs) {
    stats.expired++;
    msg.ack();
    return;
  }
  try {
    if (job.payload.type === "message" && msg.attempts > 1 && !(await userStub(env, job.user_id).pushStillWanted(job.payload.channel_id, job.payload.seq))) {
      stats.stale++;
      msg.ack();
      return;
    }
    const outcome = await sendPush(job, settings, fetcher);
    await settle(msg, job, outcome, env, settings, stats);
  } catch (err) {
    // A bug or a platform hiccup (the user's object unreachable): try again later.
    log("error", "push.job_failed", { object: "queue", user_id: job.user_id, device_id: job.device_id, ...traced(job.trace_id) }, err);
    stats.retried++;
    msg.retry({ delaySeconds: retryDelaySeconds(msg.attempts, settings.retryBaseSeconds) });
  }
}

function withSenderName(job: PushJob, name: string): PushJob {
  if (job.payload.type !== "message") return job;
  const payload = { ...job.payload, sender_name: name };
  // A DM is titled with the other person's name.
  if (payload.channel_type === "dm" && payload.channel_name === "") payload.channel_name = name;
  return { ...job, payload };
}

async function settle(msg: Message<unknown>, job: PushJob, outcome: SendOutcome, env: Env, settings: PushSettings, stats: PushBatchStats): Promise<void> {
  switch (outcome.kind) {
    case "sent":
      stats.sent++;
      log("debug", "push.sent", { object: "queue", provider: job.subscription.type, user_id: job.user_id, device_id: job.device_id, type: job.payload.type, ...traced(job.trace_id) });
      msg.ack();
      return;
    case "gone":
      await userStub(env, job.user_id).removePushSubscription(job.device_id, subscriptionKey(job.subscription));
      stats.removed++;
      msg.ack();
      return;
    case "retry":
      stats.retried++;
      msg.retry({ delaySeconds: retryDelaySeconds(msg.attempts, settings.retryBaseSeconds, outcome.afterSeconds) });
      return;
    case "rejected":
      stats.rejected++;
      log("warn", "push.rejected", { object: "queue", provider: job.subscription.type, user_id: job.user_id, device_id: job.device_id, status: outcome.status, reason: outcome.reason, ...traced(job.trace_id) });
      msg.ack();
      return;
  }
}
