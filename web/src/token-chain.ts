/**
 * The profile's newest refresh token in IndexedDB, where every tab reads the same value
 * (session.ts says why localStorage is not enough). One record: the account and its token.
 */
import type { TokenChain } from "./session.js";

const STORE = "session";
const KEY = "newest";

interface Head {
  user_id: string;
  refresh_token: string;
}

/** The chain in the database `name`; undefined where the browser has no IndexedDB. */
export function indexedDbTokenChain(name = "edgechat-session"): TokenChain | undefined {
  if (typeof indexedDB === "undefined") return undefined;
  let db: Promise<IDBDatabase> | undefined;
  const open = (): Promise<IDBDatabase> => {
    db ??= new Promise<IDBDatabase>((resolve, reject) => {
      const req = indexedDB.open(name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => {
        // Another tab deleting or upgrading the database: let it, and open again on next use.
        req.result.onversionchange = () => {
          req.result.close();
          db = undefined;
        };
        resolve(req.result);
      };
      req.onerror = () => {
        db = undefined;
        reject(req.error ?? new Error("IndexedDB open failed"));
      };
    });
    return db;
  };
  /** Runs `work` in one transaction; resolves with its request's result once the transaction committed. */
  const transact = async <T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> => {
    const tx = (await open()).transaction(STORE, mode);
    const req = work(tx.objectStore(STORE));
    return new Promise<T>((resolve, reject) => {
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction failed"));
    });
  };
  return {
    async newest(userId) {
      const head = (await transact("readonly", (s) => s.get(KEY))) as Head | undefined;
      return head?.user_id === userId ? head.refresh_token : undefined;
    },
    async advance(userId, token) {
      const head: Head = { user_id: userId, refresh_token: token };
      await transact("readwrite", (s) => s.put(head, KEY));
    },
    async forget() {
      await transact("readwrite", (s) => s.delete(KEY));
    },
  };
}
