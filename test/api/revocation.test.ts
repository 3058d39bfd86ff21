/**
 * Signing a session out ends it everywhere: its sockets close (ERROR session_revoked, close 4410)
 * in the same call that signs it out, and its access tokens are refused from then on, on REST and
 * on connect. Other sessions of the same user are untouched.
 */
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { CLOSE } from "../../shared/frames.js";
import { call, createDm, register, type TestUser } from "../helpers/api.js";
import { connectDevice, onlineDevice, type TestDevice } from "../helpers/socket.js";

const T = pb.FrameType;
const PASSWORD = "correct horse battery";

/** A second sign-in of the same account: its own session, refresh token and access token. */
async function loginAgain(user: TestUser): Promise<TestUser & { session_id: string }> {
  const r = await call<TestUser & { session_id: string }>("POST", "/v1/auth/login", { body: { username: user.username, password: PASSWORD } });
  expect(r.status).toBe(200);
  return r.body;
}

const sessionOf = (user: { refresh_token: string }) => user.refresh_token.split(".")[1]!;

async function expectSignedOut(device: TestDevice): Promise<void> {
  const closed = await device.waitClosed(10_000);
  expect(closed.code).toBe(CLOSE.sessionRevoked);
  expect(device.frames.find((f) => f.type === T.ERROR)?.error?.code).toBe("session_revoked");
}

async function expectTokenRefused(token: string): Promise<void> {
  const rest = await call("GET", "/v1/channels", { token });
  expect([rest.status, rest.body.code]).toEqual([401, "session_revoked"]);
  const socket = await connectDevice(token, "comes-back");
  const closed = await socket.waitClosed(10_000);
  expect(closed.code).toBe(CLOSE.sessionRevoked);
  expect(socket.frames.map((f) => f.type)).not.toContain(T.HELLO);
  expect(socket.frames[0]?.error?.code).toBe("session_revoked");
}

/** The other session still works: its socket gets a new message (a positive marker) and REST answers. */
async function expectStillSignedIn(user: TestUser, device: TestDevice, from: TestUser, channel: string): Promise<void> {
  const r = await call<{ channel_id: string; seq: number }>("GET", "/v1/channels", { token: user.access_token });
  expect(r.status).toBe(200);
  const sender = await onlineDevice(from.access_token, `marker-${Math.random().toString(36).slice(2, 7)}`);
  const text = `still here ${Math.random()}`;
  expect((await sender.sendText(channel, text)).type).toBe(T.SEND_ACK);
  const got = await device.take((f) => f.type === T.DELIVER && f.deliver!.messages!.some((m) => m.content?.text?.text === text), 10_000);
  expect(got).toBeDefined();
  expect(device.closed).toBeUndefined();
  sender.close();
}

describe("signing a session out", () => {
  it("logout closes that session's socket, and its access token is refused on REST and on connect; another session is untouched", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const dm = await createDm(alice, bob);
    const laptop = await loginAgain(alice);
    const phoneSocket = await onlineDevice(alice.access_token, "phone");
    const laptopSocket = await onlineDevice(laptop.access_token, "laptop");

    expect((await call("POST", "/v1/auth/logout", { body: { refresh_token: alice.refresh_token } })).status).toBe(204);
    await expectSignedOut(phoneSocket);
    await expectTokenRefused(alice.access_token);
    await expectStillSignedIn(laptop, laptopSocket, bob, dm);
    laptopSocket.close();
  });

  it("a reused refresh token closes every socket of its session, and the new tokens are refused too", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const dm = await createDm(alice, bob);
    const other = await loginAgain(alice);
    // Two devices on the same session (a copied token), one on another session.
    const a = await onlineDevice(alice.access_token, "a");
    const b = await onlineDevice(alice.access_token, "b");
    const c = await onlineDevice(other.access_token, "c");
    const rotated = await call<TestUser>("POST", "/v1/auth/refresh", { body: { refresh_token: alice.refresh_token } });
    expect(rotated.status).toBe(200);
    const replay = await call("POST", "/v1/auth/refresh", { body: { refresh_token: alice.refresh_token } });
    expect([replay.status, replay.body.code]).toEqual([401, "session_revoked"]);
    await expectSignedOut(a);
    await expectSignedOut(b);
    await expectTokenRefused(alice.access_token);
    await expectTokenRefused(rotated.body.access_token);
    await expectStillSignedIn(other, c, bob, dm);
    c.close();
  });

  it("lists sessions with their devices, signs one device out by session, and then everywhere else", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const dm = await createDm(alice, bob);
    const laptop = await loginAgain(alice), tablet = await loginAgain(alice);
    const phoneSocket = await onlineDevice(alice.access_token, "phone");
    const laptopSocket = await onlineDevice(laptop.access_token, "laptop");
    const tabletSocket = await onlineDevice(tablet.access_token, "tablet");

    const listed = await call<{ sessions: { session_id: string; device_id?: string; current: boolean }[] }>("GET", "/v1/sessions", { token: alice.access_token });
    expect(listed.status).toBe(200);
    expect(listed.body.sessions.map((s) => [s.session_id, s.device_id, s.current]).sort()).toEqual([
      [sessionOf(alice), "phone", true], [sessionOf(laptop), "laptop", false], [sessionOf(tablet), "tablet", false],
    ].sort());
    const devices = await call<{ devices: { device_id: string; session_id?: string }[] }>("GET", "/v1/devices", { token: alice.access_token });
    expect(devices.body.devices.find((d) => d.device_id === "laptop")?.session_id).toBe(sessionOf(laptop));

    // "Sign out this device", from the phone.
    expect((await call("DELETE", `/v1/sessions/${sessionOf(laptop)}`, { token: alice.access_token })).status).toBe(204);
    await expectSignedOut(laptopSocket);
    await expectTokenRefused(laptop.access_token);
    expect((await call("DELETE", `/v1/sessions/${sessionOf(laptop)}`, { token: alice.access_token })).body.code).toBe("not_found");
    await expectStillSignedIn(tablet, tabletSocket, bob, dm);

    // "Sign out everywhere else", from the phone: the tablet goes, the phone stays.
    const others = await call<{ signed_out: number }>("POST", "/v1/sessions/logout-others", { token: alice.access_token });
    expect([others.status, others.body.signed_out]).toEqual([200, 1]);
    await expectSignedOut(tabletSocket);
    await expectTokenRefused(tablet.access_token);
    await expectStillSignedIn(alice, phoneSocket, bob, dm);
    const left = await call<{ sessions: { session_id: string }[] }>("GET", "/v1/sessions", { token: alice.access_token });
    expect(left.body.sessions.map((s) => s.session_id)).toEqual([sessionOf(alice)]);
    phoneSocket.close();
  });
});
