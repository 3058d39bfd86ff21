/** Refresh sessions on their own: hashes only, rotation, replay of a rotated secret, expiry, logout. */
import { describe, expect, it } from "vitest";
import { ENDED_KEPT_MS, Sessions } from "../../durable-objects/user/sessions.js";
import { hashSecret } from "../../shared/secrets.js";
import { inFreshUser } from "../helpers/object-sql.js";

const known = () => true;

describe("Sessions", () => {
  it("stores only the hash of a session's secret", async () => {
    await inFreshUser(async (sql) => {
      const s = await new Sessions(sql).create();
      const row = sql.exec<{ secret_hash: string }>("SELECT secret_hash FROM sessions WHERE session_id = ?", s.sessionId).one();
      expect(row.secret_hash).toBe(await hashSecret(s.secret));
      expect(JSON.stringify(sql.exec("SELECT * FROM sessions").toArray())).not.toContain(s.secret);
    });
  });

  it("rotates the secret on every refresh; the new one works, the old one revokes the whole session", async () => {
    await inFreshUser(async (sql) => {
      const sessions = new Sessions(sql);
      const first = await sessions.create();
      const second = await sessions.rotate(first.sessionId, first.secret, known);
      expect(second).toMatchObject({ ok: true, sessionId: first.sessionId });
      if (!second.ok) return;
      expect(second.secret).not.toBe(first.secret);
      const third = await sessions.rotate(first.sessionId, second.secret, known);
      expect(third.ok).toBe(true);
      if (!third.ok) return;
      // Replaying the secret third replaced: the token leaked, nothing of the session works anymore.
      const replay = await sessions.rotate(first.sessionId, second.secret, known);
      expect(replay).toMatchObject({ ok: false, code: "session_revoked", message: expect.stringContaining("already used") });
      expect(await sessions.rotate(first.sessionId, third.secret, known)).toMatchObject({ ok: false, code: "session_revoked" });
      expect(sessions.isActive(first.sessionId)).toBe(false);
    });
  });

  it("refuses wrong secrets, unknown, expired and revoked sessions, and sessions of an unknown user", async () => {
    await inFreshUser(async (sql) => {
      const sessions = new Sessions(sql);
      const s = await sessions.create();
      expect(await sessions.rotate(s.sessionId, "wrong", known)).toMatchObject({ ok: false, code: "unauthorized" });
      expect(await sessions.rotate("no-such-session", s.secret, known)).toMatchObject({ ok: false, code: "unauthorized" });
      expect(await sessions.rotate(s.sessionId, s.secret, () => false)).toMatchObject({ ok: false, code: "unauthorized" });
      // A wrong secret is not a replay: the session still works.
      expect((await sessions.rotate(s.sessionId, s.secret, known)).ok).toBe(true);

      const old = await sessions.create();
      sql.exec("UPDATE sessions SET expires_at = ? WHERE session_id = ?", Date.now() - 1, old.sessionId);
      expect(await sessions.rotate(old.sessionId, old.secret, known)).toMatchObject({ ok: false, code: "unauthorized" });

      const out = await sessions.create();
      expect(await sessions.revoke(out.sessionId, "wrong")).toBe(false);
      expect(await sessions.revoke(out.sessionId, out.secret)).toBe(true);
      expect(await sessions.revoke(out.sessionId, out.secret)).toBe(false);
      expect(await sessions.rotate(out.sessionId, out.secret, known)).toMatchObject({ ok: false, code: "session_revoked" });
      // Someone without the secret learns nothing more than "not valid".
      expect(await sessions.rotate(out.sessionId, "wrong", known)).toMatchObject({ ok: false, code: "unauthorized" });
    });
  });

  it("tells whoever closes sockets of every session that ends, once, and of a refresh that finds one ended", async () => {
    await inFreshUser(async (sql) => {
      const ended: string[] = [];
      const sessions = new Sessions(sql, (id) => ended.push(id));
      const [a, b, c, d, e] = [await sessions.create(), await sessions.create(), await sessions.create(), await sessions.create(), await sessions.create()];
      expect(await sessions.revoke(a.sessionId, "wrong")).toBe(false);
      expect(await sessions.revoke(a.sessionId, a.secret)).toBe(true);
      expect(sessions.revokeById(b.sessionId)).toBe(true);
      expect(sessions.revokeById(b.sessionId)).toBe(false);
      expect(ended).toEqual([a.sessionId, b.sessionId]);
      // A refresh with a signed-out session's secret closes what may still be open; a wrong secret closes nothing.
      expect(await sessions.rotate(a.sessionId, a.secret, known)).toMatchObject({ code: "session_revoked" });
      expect(await sessions.rotate(a.sessionId, "wrong", known)).toMatchObject({ code: "unauthorized" });
      // A replayed (rotated) secret ends the session.
      const next = await sessions.rotate(c.sessionId, c.secret, known);
      expect(next.ok).toBe(true);
      expect(await sessions.rotate(c.sessionId, c.secret, known)).toMatchObject({ code: "session_revoked" });
      expect(ended).toEqual([a.sessionId, b.sessionId, a.sessionId, c.sessionId]);
      expect(sessions.revokeAllBut(d.sessionId)).toEqual([e.sessionId]);
      expect(ended.at(-1)).toBe(e.sessionId);
      expect(ended).toHaveLength(5);
    });
  });

  it("signs sessions out by id and all but one, and lists the active ones with the device that used them", async () => {
    await inFreshUser(async (sql) => {
      const sessions = new Sessions(sql);
      const [a, b, c] = [await sessions.create(), await sessions.create(), await sessions.create()];
      sessions.used(b.sessionId, "laptop");
      const listed = sessions.list(a.sessionId);
      expect(listed.map((s) => s.session_id).sort()).toEqual([a, b, c].map((s) => s.sessionId).sort());
      expect(listed.find((s) => s.current)?.session_id).toBe(a.sessionId);
      expect(listed.find((s) => s.session_id === b.sessionId)?.device_id).toBe("laptop");
      expect(sessions.sessionsByDevice()).toEqual(new Map([["laptop", b.sessionId]]));

      expect(sessions.revokeById(c.sessionId)).toBe(true);
      expect(sessions.revokeById(c.sessionId)).toBe(false);
      expect(sessions.isActive(c.sessionId)).toBe(false);
      expect(sessions.revokeAllBut(a.sessionId)).toEqual([b.sessionId]);
      expect(sessions.list(a.sessionId).map((s) => s.session_id)).toEqual([a.sessionId]);
      expect(sessions.sessionsByDevice()).toEqual(new Map());
      expect(sessions.isActive(a.sessionId)).toBe(true);
      expect(sessions.isActive("no-such-session")).toBe(false);
    });
  });

  it("forgets sessions a week after they ended, at the next login", async () => {
    await inFreshUser(async (sql) => {
      const sessions = new Sessions(sql);
      const old = await sessions.create();
      sessions.revokeById(old.sessionId);
      sql.exec("UPDATE sessions SET revoked_at = ? WHERE session_id = ?", Date.now() - ENDED_KEPT_MS - 1, old.sessionId);
      const recent = await sessions.create();
      sessions.revokeById(recent.sessionId);
      await sessions.create();
      const ids = sql.exec<{ session_id: string }>("SELECT session_id FROM sessions").toArray().map((r) => r.session_id);
      expect(ids).not.toContain(old.sessionId);
      expect(ids).toContain(recent.sessionId);
    });
  });
});
