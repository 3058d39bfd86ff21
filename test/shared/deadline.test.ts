import { describe, expect, it } from "vitest";
import { DeadlineError, SharedDeadline } from "../../shared/deadline.js";

/** A call that answers when told to. */
function pendingCall<T>() {
  let answer!: (value: T) => void;
  let fail!: (err: unknown) => void;
  const call = new Promise<T>((resolve, reject) => { answer = resolve; fail = reject; });
  return { call, answer, fail };
}

describe("SharedDeadline", () => {
  it("passes answers and errors through, and holds nothing once every call has answered", async () => {
    const deadline = new SharedDeadline(60_000, "deliver");
    const a = pendingCall<string>();
    const b = pendingCall<string>();
    const ra = deadline.run(a.call);
    const rb = deadline.run(b.call);
    expect(deadline.waiting).toBe(2);
    a.answer("one");
    b.fail(new Error("callee threw"));
    await expect(ra).resolves.toBe("one");
    await expect(rb).rejects.toThrow("callee threw");
    expect(deadline.waiting).toBe(0);
  });

  it("gives up on each call that does not answer in time, oldest first, and ignores its late answer", async () => {
    let now = 1_000;
    const deadline = new SharedDeadline(20, "deliver to user", () => now);
    const slow = pendingCall<string>();
    const quick = pendingCall<string>();
    const later = pendingCall<string>();
    const outcomes: string[] = [];
    const track = (name: string, p: Promise<string>) => p.then((v) => outcomes.push(`${name}: ${v}`), (e: unknown) => outcomes.push(`${name}: ${e instanceof DeadlineError ? e.message : String(e)}`));
    const done = [track("slow", deadline.run(slow.call)), track("quick", deadline.run(quick.call))];
    now = 1_010;
    done.push(track("later", deadline.run(later.call)));
    quick.answer("ok");
    await done[1];
    // The timer fires for the oldest: "slow" is past its deadline, "later" (started 10 ms on) not yet.
    now = 1_020;
    await done[0];
    expect(outcomes).toEqual(["quick: ok", "slow: deliver to user: no answer within 20 ms"]);
    expect(deadline.waiting).toBe(1);
    slow.answer("too late"); // already given up on: nothing changes
    now = 1_030;
    await done[2];
    expect(outcomes.at(-1)).toBe("later: deliver to user: no answer within 20 ms");
    expect(deadline.waiting).toBe(0);
    // A new call after everything expired gets a timer of its own again.
    const fresh = pendingCall<string>();
    const rf = deadline.run(fresh.call);
    fresh.answer("fine");
    await expect(rf).resolves.toBe("fine");
  });
});
