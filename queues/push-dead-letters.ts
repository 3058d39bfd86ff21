/**
 * The push dead-letter queue's consumer: jobs that exhausted their retries. Each is counted on
 * its device (GET /v1/devices shows `push.failures`, so the app can say "notifications are not
 * reaching this device"), counted in metrics (`push.dead_letter` by provider) and logged;
 * nothing is sent again.
 */
import { subscriptionKey } from "../durable-objects/user/push-subscriptions.js";
import { userStub } from "../shared/routing.js";
import { parsePushJob } from "./push-jobs.js";
import { log } from "../shared/log.js";
import { count } from "../shared/metrics.js";

export async function consumePushDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<{ counted: number; invalid: number }> {
  let counted = 0;
  let invalid = 0;
  await Promise.all(batch.messages.map(async (msg) => {
    const job = parsePushJob(msg.body);
    if (!job) {
      invalid++;
      log("error", "push.dead_letter_invalid", { object: "queue", id: msg.id });
      msg.ack();
      return;
    }
    count("push.dead_letter", 1, { provider: job.subscription.type });
    log("warn", "push.dead_letter", {
      object: "queue", provider: job.subscription.type, user_id: job.user_id, device_id: job.device_id, kind: job.payload.type, age_ms: Date.now() - job.created_at,
    });
    try {
      await userStub(env, job.user_id).recordPushDeadLetter(job.device_id, subscriptionKey(job.subscription));
      counted++;
      msg.ack();
    } catch (err) {
      log("error", "push.dead_letter_count_failed", { object: "queue", user_id: job.user_id, device_id: job.device_id }, err);
      msg.retry({ delaySeconds: 30 });
    }
  }));
  return { counted, invalid };
}
