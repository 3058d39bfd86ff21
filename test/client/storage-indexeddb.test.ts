/**
 * The IndexedDB outbox adapter against a small in-memory IndexedDB (workerd has none). The fake
 * keeps IndexedDB's shape that matters here: async open with an upgrade step, one transaction per
 * call, results delivered on the transaction's completion, structured clones in and out.
 */
import { describe, expect, it } from "vitest";
import { indexedDbStorage, type IndexedDbFactory } from "../../client/storage-indexeddb.js";
import type { OutboxEntry } from "../../client/types.js";
import { channelState, connectReady, harness, ME, settle, T } from "./fakes.js";

type Req<T> = { result: T; error: unknown; onsuccess: (() => void) | null; onerror: (() => void) | null };

function fakeIndexedDb(opts: { failWrites?: boolean } = {}): IndexedDbFactory & { opens: number } {
  const databases = new Map<string, Map<string, Map<string, unknown>>>();
  const factory = {
    opens: 0,
    open(name: string) {
      factory.opens++;
      const stores = databases.get(name) ?? new Map<string, Map<string, unknown>>();
      const isNew = !databases.has(name);
      databases.set(name, stores);
      const db = {
        objectStoreNames: { contains: (n: string) => stores.has(n) },
        createObjectStore: (n: string) => stores.set(n, new Map()),
        close: () => {},
        onversionchange: null as (() => void) | null,
        transaction: (storeName: string) => {
          const store = stores.get(storeName)!;
          const tx = {
            error: null as unknown,
            oncomplete: null as (() => void) | null,
            onerror: null as (() => void) | null,
            onabort: null as (() => void) | null,
            objectStore: () => ({
              getAll: () => finish(tx, [...store.values()].map((v) => structuredClone(v))),
              put: (v: unknown) => {
                if (opts.failWrites) return fail(tx, new Error("QuotaExceededError"));
                store.set((v as { client_msg_id: string }).client_msg_id, structuredClone(v));
                return finish(tx, undefined);
              },
              delete: (k: string) => {
                store.delete(k);
                return finish(tx, undefined);
              },
            }),
          };
          return tx;
        },
      };
      const req = { result: db, error: null, onsuccess: null, onerror: null, onupgradeneeded: null as (() => void) | null, onblocked: null };
      queueMicrotask(() => {
        if (isNew) req.onupgradeneeded?.();
        (req as Req<unknown>).onsuccess?.();
      });
      return req;
    },
  };
  return factory;
}

function finish<T>(tx: { oncomplete: (() => void) | null }, result: T): Req<T> {
  const req: Req<T> = { result, error: null, onsuccess: null, onerror: null };
  queueMicrotask(() => tx.oncomplete?.());
  return req;
}

function fail(tx: { error: unknown; onerror: (() => void) | null }, error: Error): Req<undefined> {
  const req: Req<undefined> = { result: undefined, error, onsuccess: null, onerror: null };
  queueMicrotask(() => {
    tx.error = error;
    tx.onerror?.();
  });
  return req;
}

const entry = (id: string, extra: Partial<OutboxEntry> = {}): OutboxEntry => ({
  client_msg_id: id, channel_id: "c1", content: { text: { text: id } }, created_at: 1, state: "sending", attempts: 0, ...extra,
});

describe("indexedDbStorage", () => {
  it("stores, lists and deletes entries, opening the database once", async () => {
    const idb = fakeIndexedDb();
    const storage = indexedDbStorage({ indexedDB: idb, name: "t1" });
    await storage.put(entry("a"));
    await storage.put(entry("b"));
    await storage.put(entry("a", { attempts: 3 }));
    expect((await storage.load()).map((e) => [e.client_msg_id, e.attempts])).toEqual([["a", 3], ["b", 0]]);
    await storage.delete("a");
    expect((await storage.load()).map((e) => e.client_msg_id)).toEqual(["b"]);
    expect(idb.opens).toBe(1);
  });

  it("survives a 'reload': a second adapter on the same database sees the entries", async () => {
    const idb = fakeIndexedDb();
    await indexedDbStorage({ indexedDB: idb }).put(entry("kept", { content: { encrypted: { ciphertext: new Uint8Array([1, 2, 3]) } } }));
    const [restored] = await indexedDbStorage({ indexedDB: idb }).load();
    expect(restored?.content).toEqual({ encrypted: { ciphertext: new Uint8Array([1, 2, 3]) } });
  });

  it("rejects clearly where IndexedDB does not exist", async () => {
    await expect(indexedDbStorage().load()).rejects.toThrow(/IndexedDB is not available/);
  });

  it("lets a client send what an earlier page queued", async () => {
    const idb = fakeIndexedDb();
    const before = harness({ storage: indexedDbStorage({ indexedDB: idb }) });
    const pending = before.client.send("c1", "typed offline");
    await settle();
    const after = harness({ storage: indexedDbStorage({ indexedDB: idb }) });
    const s = await connectReady(after, [channelState("c1", 0)]);
    expect(s.framesOfType(T.SEND).map((f) => f.send?.client_msg_id)).toEqual([pending.clientMsgId]);
    expect(after.client.outbox.list()[0]?.user_id).toBe(ME);
  });

  it("reports storage failures as error events and keeps working from memory", async () => {
    const h = harness({ storage: indexedDbStorage({ indexedDB: fakeIndexedDb({ failWrites: true }) }) });
    const s = await connectReady(h, [channelState("c1", 0)]);
    h.client.send("c1", "still goes out");
    await settle();
    expect(h.events.error.map((e) => e.code)).toContain("storage_error");
    expect(s.framesOfType(T.SEND)).toHaveLength(1);
  });
});
