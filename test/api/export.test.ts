import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BASE, call, createDm, createGroup, register } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";

async function exportOf(token: string): Promise<{ status: number; headers: Headers; body: Record<string, any> }> {
  const res = await SELF.fetch(`${BASE}/v1/me/export`, { headers: { Authorization: `Bearer ${token}` } });
  return { status: res.status, headers: res.headers, body: JSON.parse(await res.text()) };
}

describe("GET /v1/me/export", () => {
  it("streams the user's profile, settings, devices and channels with their own messages only, oldest first", { timeout: 90_000 }, async () => {
    const alice = await register("alice"), bob = await register("bob"), carol = await register("carol");
    const dm = await createDm(alice, bob);
    const group = await createGroup(carol, [alice], "Book club");
    const a = await onlineDevice(alice.access_token, "alice-phone");
    const b = await onlineDevice(bob.access_token, "bob-phone");
    // More than one page (200) of history, sent with a window as the SDK does.
    const acks = await a.sendTexts(Array.from({ length: 250 }, (_, i) => ({ channelId: dm, text: `dm ${i}` })));
    const mine = acks.map((f) => Number(f.send_ack?.seq));
    await b.sendText(dm, "bob's own words");
    const inGroup = (await a.sendText(group, "in the group")).send_ack!.seq;
    const gone = await a.sendText(dm, "deleted for everyone");
    await call("DELETE", `/v1/channels/${dm}/messages/${gone.send_ack!.seq}?for=everyone`, { token: alice.access_token });
    await call("PATCH", "/v1/me/settings", { token: alice.access_token, body: { read_receipts: true } });

    const out = await exportOf(alice.access_token);
    expect(out.status).toBe(200);
    expect(out.headers.get("content-disposition")).toContain(`edgechat-export-${alice.username}.json`);
    expect(out.body).toMatchObject({
      format: "edgechat-export/1",
      profile: { user_id: alice.user_id, username: alice.username },
      settings: { read_receipts: true },
    });
    expect(out.body.devices.map((d: { device_id: string }) => d.device_id)).toEqual(["alice-phone"]);
    const byId = new Map(out.body.channels.map((c: { channel_id: string }) => [c.channel_id, c]));
    const dmOut = byId.get(dm) as { messages: { seq: number; sender_user_id: string; content: { text?: { text: string } } }[] };
    expect(dmOut.messages.map((m) => m.seq)).toEqual(mine);
    expect(dmOut.messages.every((m) => m.sender_user_id === alice.user_id)).toBe(true);
    expect(dmOut.messages[0]!.content.text?.text).toBe("dm 0");
    expect((byId.get(group) as { name: string; messages: { seq: number }[] })).toMatchObject({ name: "Book club", messages: [{ seq: inGroup }] });
    a.close(); b.close();
  });

  it("needs the user's own token", async () => {
    const res = await SELF.fetch(`${BASE}/v1/me/export`);
    expect(res.status).toBe(401);
  });
});
