/**
 * Restarts inside workerd: the process dies after an append is durable (and acknowledged) but
 * before its fan-out ran. Reproduced with the real append path and the fan-out suppressed in that
 * instance, then abortAllDurableObjects() (every object restarts, storage kept, like a crash).
 *
 * Nothing may touch the channel afterwards except what a member's reconnecting device does: in
 * real life the channel may simply be quiet (the crash hit its last message of the day).
 */
import { abortAllDurableObjects, env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { ChannelObject } from "../../durable-objects/channel/ChannelObject.js";
import { createGroup, register } from "../helpers/api.js";
import { fullHistory, probeHello, probeOnline, sleep, T } from "./support.js";

/** Runs `write` in a channel instance that "dies" before its fan-out pump runs. */
function beforeFanout<T>(stub: DurableObjectStub<ChannelObject>, write: (instance: ChannelObject) => T): Promise<T> {
  return runInDurableObject(stub, (instance: ChannelObject) => {
    (instance as unknown as { kickFanout(): void }).kickFanout = () => {};
    return write(instance);
  });
}

describe("restart between a durable append (or change) and its fan-out", () => {
  it("finishes the fan-out after the restart: the member's device gets the message (and an edit) live or on RESUME", async () => {
    const [alice, bob] = await Promise.all([register("alice"), register("bob")]);
    const group = await createGroup(alice, [bob], "Crash window");
    const b = await probeHello(bob.access_token, "bob-phone");
    await b.resume([]);
    const a = await probeOnline(alice.access_token, "alice-phone");
    expect((await a.sendText(group, "before the crash")).type).toBe(T.SEND_ACK);
    await b.deliveredUpTo(group, 2);
    b.close(); a.close();
    await Promise.all([b.waitClosed(), a.waitClosed()]);

    const stub = env.CHANNELS.get(env.CHANNELS.idFromName(group));
    const ack = await beforeFanout(stub, (instance) => {
      const r = instance.append({ userId: alice.user_id, deviceId: "alice-phone", clientMsgId: "acked-then-crash", content: { text: { text: "acked, then the server died" } } });
      if (!r.ok) throw new Error(r.message);
      return r.ack;
    });
    expect(ack.seq).toBe(3);
    // In the same crash: an edit in another channel, acknowledged, not yet fanned out. (One
    // abortAllDurableObjects() for both: it restarts every object in the runtime, other files' too.)
    const edits = await createGroup(alice, [bob], "Crash window, edits");
    const a2 = await probeOnline(alice.access_token, "alice-phone");
    expect((await a2.sendText(edits, "meet at 7")).type).toBe(T.SEND_ACK);
    a2.close();
    const change = await beforeFanout(env.CHANNELS.get(env.CHANNELS.idFromName(edits)), (instance) => {
      const r = instance.edit(alice.user_id, "alice-phone", 2, { text: { text: "meet at 8" } });
      if (!r.ok) throw new Error(r.message);
      return r;
    });
    expect(change.changed).toBe(true);
    await abortAllDurableObjects();

    // Only bob's device reconnecting; nothing else wakes the channel.
    const again = await probeHello(bob.access_token, "bob-phone");
    const { messages } = await again.resume([{ channel_id: group, last_seq: 2 }]);
    const got = new Set(messages.map((m) => m.client_msg_id));
    if (!got.has("acked-then-crash")) {
      const late = await again.maybeTake((f) => f.type === T.DELIVER && !!f.deliver?.messages?.some((m) => m.client_msg_id === "acked-then-crash"), 10_000);
      if (late) got.add("acked-then-crash");
    }
    expect([...got]).toContain("acked-then-crash");
    expect((await fullHistory(alice, group)).map((m) => Number(m.seq))).toEqual([1, 2, 3]);

    // The edit reaches bob's device too (in that RESUME, or after it), and the message stays edited.
    // A second RESUME on the connection repeats nothing it was sent already.
    const resumed = await again.resume([{ channel_id: edits, last_seq: 2 }]);
    let edit = [...messages, ...resumed.messages].find((m) => m.channel_id === edits && m.content?.update);
    if (!edit) {
      const late = await again.maybeTake((f) => f.type === T.DELIVER && !!f.deliver?.messages?.some((m) => m.content?.update), 10_000);
      edit = late?.deliver?.messages?.find((m) => m.content?.update);
    }
    again.close();
    expect(Number(edit?.seq)).toBe(3);
    expect(edit?.content?.update?.target?.content?.text?.text).toBe("meet at 8");
    const log = await fullHistory(alice, edits);
    expect(log.map((m) => Number(m.seq))).toEqual([1, 2, 3]);
    expect(log[1]?.content?.text?.text).toBe("meet at 8");
  });
});

describe("a channel alarm with nothing left to fan out", () => {
  // The alarm also runs when a delivery to one member failed and is retried (scheduleRetry), by
  // which time the pump has usually caught up. It must not stop the channel's later fan-out.
  it("leaves live delivery working for the next messages", async () => {
    const [alice, bob] = await Promise.all([register("alice"), register("bob")]);
    const group = await createGroup(alice, [bob], "Alarm with nothing to do");
    const b = await probeHello(bob.access_token, "bob-phone");
    await b.resume([]);
    const a = await probeOnline(alice.access_token, "alice-phone");
    expect((await a.sendText(group, "one")).type).toBe(T.SEND_ACK);
    await b.deliveredUpTo(group, 2);
    const stub = env.CHANNELS.get(env.CHANNELS.idFromName(group));
    await runInDurableObject(stub, (_instance, state) => state.storage.setAlarm(Date.now() + 60_000));
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    for (const text of ["two", "three"]) expect((await a.sendText(group, text)).type).toBe(T.SEND_ACK);
    const got = await b.deliveredUpTo(group, 4, 5000);
    expect(got.map((m) => m.content?.text?.text ?? m.content?.system?.event)).toEqual(["created", "one", "two", "three"]);
    a.close(); b.close();
  });
});
