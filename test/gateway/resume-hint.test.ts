/**
 * RESUME_HINT: after HELLO every socket gets a resume token that reopens the same device's socket
 * of the same session without a fresh access token, and is good for nothing else.
 */
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { call, createDm, register } from "../helpers/api.js";
import { connectWith, onlineDevice } from "../helpers/socket.js";

const T = pb.FrameType;

describe("RESUME_HINT", () => {
  it("follows HELLO with a resume token that reconnects that device, and a RESUME that loses nothing", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const dm = await createDm(alice, bob);
    const phone = await connectWith({ access_token: alice.access_token }, "alice-phone");
    await phone.next(T.HELLO);
    const first = await phone.take(() => true); // whatever comes right after HELLO
    expect(first.type).toBe(T.RESUME_HINT);
    const token = first.resume_hint?.session_token ?? "";
    expect(token.split(".")).toHaveLength(3);
    phone.close();

    const b = await onlineDevice(bob.access_token, "bob-phone");
    const seq = Number((await b.sendText(dm, "while you were away")).send_ack?.seq);
    const again = await connectWith({ resume_token: token }, "alice-phone");
    expect((await again.next(T.HELLO)).hello?.user_id).toBe(alice.user_id);
    expect((await again.next(T.RESUME_HINT)).resume_hint?.session_token).toBeTruthy(); // a fresh one each time
    const { messages } = await again.resume([{ channel_id: dm, last_seq: seq - 1 }]);
    expect(messages.map((m) => m.seq)).toEqual([seq]);
    again.close(); b.close();
  });

  it("opens nothing but that device's socket: not another device, not REST, and access tokens are not resume tokens", async () => {
    const alice = await register("alice");
    const phone = await onlineDevice(alice.access_token, "alice-phone");
    const token = phone.resumeToken;
    phone.close();
    const other = await connectWith({ resume_token: token }, "alice-laptop");
    expect((await other.next(T.ERROR)).error?.code).toBe("unauthorized");
    expect((await other.waitClosed()).code).toBe(4401);
    const forged = await connectWith({ resume_token: alice.access_token }, "alice-phone");
    expect((await forged.next(T.ERROR)).error?.code).toBe("unauthorized");
    expect((await call("GET", "/v1/me", { token })).status).toBe(401);
    const asAccess = await connectWith({ access_token: token }, "alice-phone");
    expect((await asAccess.next(T.ERROR)).error?.code).toBe("unauthorized");
  });

  it("stops working when its session is signed out", async () => {
    const alice = await register("alice");
    const phone = await onlineDevice(alice.access_token, "alice-phone");
    const token = phone.resumeToken;
    phone.close();
    expect((await call("POST", "/v1/auth/logout", { body: { refresh_token: alice.refresh_token } })).status).toBe(204);
    const again = await connectWith({ resume_token: token }, "alice-phone");
    expect((await again.next(T.ERROR)).error?.code).toBe("session_revoked");
    expect((await again.waitClosed()).code).toBe(4410);
  });
});
