/**
 * The UserObject's calls to its presence shard are chained (an offline report must never
 * overtake the online before it) and each has a deadline: a shard that never answers holds the
 * chain up for DEADLINES.presence, not for ever.
 */
import { describe, expect, it } from "vitest";
import { PresenceLink } from "../../durable-objects/user/presence-link.js";
import { DeadlineError, withDeadline } from "../../shared/deadline.js";
import { failureFromException } from "../../shared/errors.js";
import { newId } from "../../shared/ids.js";

/** An env whose presence shards record every report and never answer the first one. */
function stuckShardEnv() {
  const reports: string[] = [];
  const shard = {
    report: (_userId: string, status: string) => {
      reports.push(status);
      return reports.length === 1 ? new Promise(() => {}) : Promise.resolve();
    },
  };
  const env = { JURISDICTIONS: "simulated", PRESENCE: { idFromName: (name: string) => name, get: () => shard } } as unknown as Env;
  return { env, reports };
}

describe("presence calls with a deadline", () => {
  it("gives up on a report the shard never answers, and the next one goes out after the deadline", async () => {
    const { env, reports } = stuckShardEnv();
    const link = new PresenceLink(env, newId("u"));
    void link.report("online");
    await link.report("offline"); // before: waited for ever behind the stuck "online"
    expect(reports).toEqual(["online", "offline"]);
  });

  it("withDeadline passes an answer through and turns silence into a retryable DeadlineError", async () => {
    await expect(withDeadline(Promise.resolve(7), 1_000, "quick")).resolves.toBe(7);
    const late = withDeadline(new Promise(() => {}), 20, "never");
    await expect(late).rejects.toBeInstanceOf(DeadlineError);
    await expect(late).rejects.toMatchObject({ retryable: true, what: "never", ms: 20 });
  });

  it("answers a call past its deadline with a retryable unavailable (503), not an internal error", () => {
    expect(failureFromException(new DeadlineError("session.create", 5_000))).toMatchObject({ code: "unavailable", retryable: true, backoffHintMs: 1_000 });
  });
});
