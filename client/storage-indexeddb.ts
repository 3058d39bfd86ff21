/**
 * Outbox persistence in IndexedDB, so messages typed while offline survive a page reload and go
 * out (with their original client_msg_id, hence exactly once) when the page comes back.
 *
 * Only the slice of IndexedDB this adapter uses is typed here, so the SDK compiles without the DOM
 * library and loads in Workers and Node (where it is simply not used).
 */
import type { OutboxEntry, OutboxStorage } from "./types.js";

interface RequestLike<T> {
  readonly result: T;
  readonly error: unknown;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
}

interface OpenRequestLike extends RequestLike<DatabaseLike> {
  onupgradeneeded: (() => void) | null;
  onblocked: (() => void) | null;
}

interface StoreLike {
  getAll(): RequestLike<unknown[]>;
  put(value: unknown): RequestLike<unknown>;
  delete(key: string): RequestLike<unknown>;
}

interface TransactionLike {
  readonly error: unknown;
  objectStore(name: string): StoreLike;
  oncomplete: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
}

interface DatabaseLike {
  readonly objectStoreNames: { contains(name: string): boolean };
  createObjectStore(name: string, options: { keyPath: string }): unknown;
  transaction(store: string, mode: "readonly" | "readwrite"): TransactionLike;
  close(): void;
  onversionchange: (() => void) | null;
}

/** The part of `IDBFactory` (`globalThis.indexedDB`) the adapter uses. */
export interface IndexedDbFactory {
  open(name: string, version?: number): OpenRequestLike;
}

export interface IndexedDbStorageOptions {
  /** Database name. Use one per account or device if several share a browser profile. Default "edgechat". */
  name?: string;
  /** Default `globalThis.indexedDB`. */
  indexedDB?: IndexedDbFactory;
}

const STORE = "outbox";
const VERSION = 1;

/**
 * @example
 * const client = createClient({ url, deviceId, credentials, storage: indexedDbStorage() });
 */
export function indexedDbStorage(options: IndexedDbStorageOptions = {}): OutboxStorage {
  const name = options.name ?? "edgechat";
  let db: Promise<DatabaseLike> | undefined;

  const open = (): Promise<DatabaseLike> => {
    db ??= new Promise<DatabaseLike>((resolve, reject) => {
      const factory = options.indexedDB ?? (globalThis as { indexedDB?: IndexedDbFactory }).indexedDB;
      if (!factory) {
        reject(new Error("IndexedDB is not available here; use memoryStorage()."));
        return;
      }
      const req = factory.open(name, VERSION);
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE, { keyPath: "client_msg_id" });
      };
      req.onsuccess = () => {
        const database = req.result;
        // Another tab upgrading the schema: let it, and reopen on next use.
        database.onversionchange = () => {
          database.close();
          db = undefined;
        };
        resolve(database);
      };
      req.onerror = () => reject(asError(req.error, "opening IndexedDB failed"));
      req.onblocked = () => reject(new Error("IndexedDB upgrade blocked by another open tab."));
    }).catch((err: unknown) => {
      db = undefined;
      throw err;
    });
    return db;
  };

  /** Runs one request in its own transaction; resolves once the transaction committed. */
  const run = async <T>(mode: "readonly" | "readwrite", op: (store: StoreLike) => RequestLike<T>): Promise<T> => {
    const database = await open();
    return new Promise<T>((resolve, reject) => {
      const tx = database.transaction(STORE, mode);
      const req = op(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(asError(tx.error ?? req.error, "IndexedDB transaction failed"));
      tx.onabort = () => reject(asError(tx.error, "IndexedDB transaction aborted"));
    });
  };

  return {
    load: async () => (await run("readonly", (s) => s.getAll())).filter(isEntry),
    put: async (entry) => {
      await run("readwrite", (s) => s.put(entry));
    },
    delete: async (clientMsgId) => {
      await run("readwrite", (s) => s.delete(clientMsgId));
    },
  };
}

function isEntry(v: unknown): v is OutboxEntry {
  if (typeof v !== "object" || v === null) return false;
  const e = v as Record<string, unknown>;
  return typeof e.client_msg_id === "string" && typeof e.channel_id === "string" && typeof e.content === "object" && e.content !== null
    && (e.state === "sending" || e.state === "sent" || e.state === "failed") && typeof e.created_at === "number";
}

function asError(err: unknown, fallback: string): Error {
  return err instanceof Error ? err : new Error(typeof err === "object" && err !== null && "message" in err ? String(err.message) : fallback);
}
