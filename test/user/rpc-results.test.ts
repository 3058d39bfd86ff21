/**
 * What a UserObject's RPC method returns is its own object, never one it received from a
 * ChannelObject. Workers RPC gives every received object result a disposer (`Symbol.dispose`); a
 * result handed on keeps it, the runtime then expects the Worker to dispose it, and when the
 * garbage collector gets there first it warns "An RPC result was not disposed properly".
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { userStub } from "../../shared/routing.js";
import { createDm, createGroup, register } from "../helpers/api.js";

const handedOn = (value: unknown) => typeof value === "object" && value !== null && Object.getOwnPropertySymbols(value).some((s) => s === Symbol.dispose);

describe("UserObject RPC results", () => {
  it("are the object's own, in the error paths that come from the channel too", async () => {
    const alice = await register("alice"), bob = await register("bob"), carol = await register("carol");
    const dm = await createDm(alice, bob);
    const group = await createGroup(alice, [carol]);
    const results = await runInDurableObject(userStub(env, carol.user_id), async (user) => {
      const out: Record<string, { ok: boolean; handedOn: boolean }> = {};
      const record = (name: string, r: { ok: boolean }) => { out[name] = { ok: r.ok, handedOn: handedOn(r) }; };
      record("history, not a member", await user.history(dm, {}));
      record("markRead, not a member", await user.markRead(dm, 1));
      record("react, no such message", await user.react(group, "rest", 99, "👍", "add"));
      record("edit, not a member", await user.edit(dm, "rest", 1, { text: { text: "x" } }));
      record("history", await user.history(group, {}));
      return out;
    });
    expect(results).toEqual({
      "history, not a member": { ok: false, handedOn: false },
      "markRead, not a member": { ok: false, handedOn: false },
      "react, no such message": { ok: false, handedOn: false },
      "edit, not a member": { ok: false, handedOn: false },
      "history": { ok: true, handedOn: false },
    });
  });
});
