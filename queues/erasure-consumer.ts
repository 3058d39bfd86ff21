/**
 * The erasure queue's consumer (docs/decisions/020). Each message runs up to
 * ERASURE_STEPS_PER_MESSAGE steps of one user's job (each step bounded: one channel batch, one
 * R2 delete, ...), then sends a message for the rest, so no invocation runs long and a job of any
 * size makes steady progress. A step that throws (an object restarting, R2 unavailable) is retried
 * with backoff; the job's state is in the UserObject, whose alarm re-drives it if every message is lost.
 *
 * The dead-letter consumer only logs: the job is still in its object and the alarm keeps driving it.
 */
import { userStub } from "../shared/routing.js";
import { log } from "../shared/log.js";
import { count } from "../shared/metrics.js";
import { parseErasureMessage, sendErasureMessage, type ErasureMessage } from "./erasure-jobs.js";

function stepsPerMessage(env: Env): number {
  const n = Number(env.ERASURE_STEPS_PER_MESSAGE ?? 20);
  return Number.isInteger(n) && n >= 1 ? n : 20;
}

export async function consumeErasureBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  await Promise.all(batch.messages.map(async (msg) => {
    const job = parseErasureMessage(msg.body);
    if (!job) {
      log("error", "erasure.invalid_message", { object: "queue", id: msg.id });
      msg.ack();
      return;
    }
    try {
      const user = userStub(env, job.user_id);
      let done = false;
      for (let i = 0; i < stepsPerMessage(env) && !done; i++) done = (await user.eraseStep()).done;
      if (!done) await sendErasureMessage(env.ERASURE_QUEUE as Queue<ErasureMessage>, job.user_id);
      msg.ack();
    } catch (err) {
      count("erasure.step_failed");
      log("warn", "erasure.step_failed", { object: "queue", user_id: job.user_id, attempts: msg.attempts }, err);
      msg.retry({ delaySeconds: Math.min(300, 2 ** Math.min(8, msg.attempts)) });
    }
  }));
}

export async function consumeErasureDeadLetters(batch: MessageBatch<unknown>): Promise<void> {
  for (const msg of batch.messages) {
    const job = parseErasureMessage(msg.body);
    count("erasure.dead_letter");
    log("error", "erasure.dead_letter", { object: "queue", user_id: job?.user_id, id: msg.id });
    msg.ack();
  }
}
