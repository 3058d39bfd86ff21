/**
 * What a UserObject keeps compiled (docs/decisions/026). The runtime caches every distinct SQL
 * text an object runs, compiled, for the object's lifetime (up to 1 MiB of SQL text), and each
 * entry is native memory of that object: a statement whose text depends on its input (one `?`
 * per list item) adds an entry per shape. Counted here by SQL text, never by bytes.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { migrate } from "../../durable-objects/migrate.js";
import { mayBeAddedBy } from "../../durable-objects/user/group-adds.js";
import { USER_MIGRATIONS } from "../../durable-objects/user/schema.js";
import { userStub } from "../../shared/routing.js";
import { register } from "../helpers/api.js";
import { inFreshUser } from "../helpers/object-sql.js";
import { helloDevice } from "../helpers/socket.js";

/** `sql` with every SQL text it runs recorded (the real storage underneath). */
function recording(sql: SqlStorage): { sql: SqlStorage; texts: Set<string> } {
  const texts = new Set<string>();
  const wrapped = {
    exec: (query: string, ...bindings: unknown[]) => {
      texts.add(query);
      return sql.exec(query, ...bindings);
    },
    get databaseSize() {
      return sql.databaseSize;
    },
  } as SqlStorage;
  return { sql: wrapped, texts };
}

describe("SQL texts a UserObject compiles", () => {
  it("checks who may add the user with one statement, whatever the length of the adder's list", async () => {
    await inFreshUser((raw) => {
      const { sql, texts } = recording(raw);
      raw.exec("INSERT INTO channels (channel_id, type, left) VALUES ('c_shared', 'dm', 0), ('c_left', 'group', 1)");
      const others = (n: number) => Array.from({ length: n }, (_, i) => `c_other${i}`);
      for (const n of [0, 1, 2, 7, 89, 90, 91, 250]) {
        expect(mayBeAddedBy(sql, "contacts", others(n)), `${n} unrelated channels`).toBe(false);
        expect(mayBeAddedBy(sql, "contacts", [...others(n), "c_shared"]), `${n} + the shared one`).toBe(true);
        expect(mayBeAddedBy(sql, "contacts", [...others(n), "c_left"]), `${n} + one the user left`).toBe(false);
      }
      expect(mayBeAddedBy(sql, "everyone", [])).toBe(true);
      expect(texts.size).toBe(1);
    });
  });

  it("reads the schema version with one statement on every wake after the first", async () => {
    await inFreshUser((raw) => {
      const { sql, texts } = recording(raw);
      migrate(sql, USER_MIGRATIONS); // migrated already: the object's constructor ran
      expect([...texts]).toEqual(["SELECT version FROM _schema WHERE id = 1"]);
    });
    // A new database: the table is created, every migration applied, the version stored.
    await inFreshUser((raw) => {
      raw.exec("DROP TABLE _schema");
      const { sql } = recording(raw);
      expect(() => migrate(sql, [])).not.toThrow();
      expect(raw.exec<{ version: number }>("SELECT version FROM _schema").toArray()).toEqual([]);
      migrate(sql, ["CREATE TABLE probe_one (x INTEGER)"]);
      expect(raw.exec<{ version: number }>("SELECT version FROM _schema").one().version).toBe(1);
      migrate(sql, ["CREATE TABLE probe_one (x INTEGER)", "CREATE TABLE probe_two (x INTEGER)"]);
      expect(raw.exec<{ version: number }>("SELECT version FROM _schema").one().version).toBe(2);
    });
  });

  it("compiles nothing new for further devices: no SQL text depends on the device or the connection", async () => {
    const alice = await register("alice");
    const stub = userStub(env, alice.user_id);
    /** Devices connect, RESUME, and close (the close is done once the object answered it). */
    const round = async (ids: string[]) => {
      for (const id of ids) {
        const d = await helloDevice(alice.access_token, id);
        await d.resume([]);
        d.close();
        await d.waitClosed(15_000);
      }
      // The alarm a connect sets (RESUME deadline, keep-alive), run now rather than whenever it is due.
      await runDurableObjectAlarm(stub);
    };
    const first = await helloDevice(alice.access_token, "d0");
    await first.resume([]);
    await round(["d1", "d2"]);
    const texts = new Set<string>();
    await runInDurableObject(stub, (_obj, state) => {
      const sql = state.storage.sql;
      const exec = sql.exec.bind(sql);
      (sql as { exec: SqlStorage["exec"] }).exec = ((query: string, ...bindings: unknown[]) => {
        texts.add(query);
        return exec(query, ...bindings);
      }) as SqlStorage["exec"];
    });
    await round(["d3", "d4", "d5"]);
    const afterOne = new Set(texts);
    expect(afterOne.size).toBeGreaterThan(0); // the recorder sees the object's statements
    await round(["d6", "d7", "d8"]);
    expect([...texts].filter((t) => !afterOne.has(t))).toEqual([]);
    first.close();
  });
});
