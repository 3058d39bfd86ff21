/**
 * Issue 8 item 5, names: display names and channel names lose bidi controls, zero-width and
 * other invisible characters and control characters where they enter, so a name can neither
 * reorder the text around it nor pass for someone else's.
 */
import { describe, expect, it } from "vitest";
import { call, register, uniqueName, type ChannelBody, type TestUser } from "../helpers/api.js";

async function registerAs(displayName: string): Promise<{ status: number; body: TestUser & { code?: string; message?: string } }> {
  return call<TestUser & { code?: string; message?: string }>("POST", "/v1/auth/register", { body: { username: uniqueName("n"), password: "correct horse battery", display_name: displayName } });
}

describe("names are cleaned at the edge", () => {
  it("strips bidi overrides and isolates, zero-width and control characters from display names", async () => {
    const spoof = await registerAs("\u202Eadmin\u202C\u200B");
    expect([spoof.status, spoof.body.display_name]).toEqual([201, "admin"]);
    const me = await call<{ display_name: string }>("GET", "/v1/me", { token: spoof.body.access_token });
    expect(me.body.display_name).toBe("admin");
    const mixed = await registerAs("\u2066Mal\u2060lory\u2069\u0007 \u200D\u200C\uFEFF\n\tSmith");
    expect(mixed.body.display_name).toBe("Mallory Smith");
    const kept = await registerAs("👩\u200D💻 Dana");
    expect(kept.body.display_name).toBe("👩\u200D💻 Dana");
    const empty = await registerAs("\u200B\u202E\u2066 \u0000");
    expect([empty.status, empty.body.code]).toEqual([400, "invalid_argument"]);
    expect(empty.body.message).toMatch(/display_name: .*visible/);
  });

  it("strips the same from channel names, and members see the clean name", async () => {
    const [alice, bob] = await Promise.all([register("alice"), register("bob")]);
    const created = await call<ChannelBody & { channel: { name: string } }>("POST", "/v1/channels", {
      token: alice.access_token, body: { type: "group", name: "\u202ETeam\u202C \u200Bplans\u0000", members: [bob.user_id] },
    });
    expect([created.status, created.body.channel.name]).toEqual([201, "Team plans"]);
    const list = await call<{ channels: { name: string }[] }>("GET", "/v1/channels", { token: bob.access_token });
    expect(list.body.channels.map((c) => c.name)).toEqual(["Team plans"]);
    const invisible = await call("POST", "/v1/channels", { token: alice.access_token, body: { type: "group", name: "\u2067\u200B\u2069", members: [] } });
    expect([invisible.status, invisible.body.code]).toEqual([400, "invalid_argument"]);
    expect(invisible.body.message).toMatch(/name: .*visible/);
  });
});
