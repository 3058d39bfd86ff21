/**
 * A Map with a size cap that forgets the least recently used entry first. For caches that must
 * stay bounded however many distinct keys an object or isolate meets (Durable Object stubs,
 * session answers): a plain Map would grow for the object's whole life.
 *
 * @example
 * const stubs = new LruMap<string, DurableObjectStub<UserObject>>(1000);
 * const stub = stubs.getOrSet(id, () => userStub(env, id));
 */
export class LruMap<K, V> {
  private readonly map = new Map<K, V>();

  constructor(readonly max: number) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`LruMap needs a positive size, not ${max}.`);
  }

  get size(): number {
    return this.map.size;
  }

  /** The value, which becomes the most recently used. */
  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value === undefined) return undefined;
    this.map.delete(key);
    this.map.set(key, value);
    return value;
  }

  /** The value for `key`, made by `make` (and kept) when there is none. */
  getOrSet(key: K, make: () => V): V {
    const value = this.get(key);
    if (value !== undefined) return value;
    const made = make();
    this.set(key, made);
    return made;
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  /** Sets the value as the most recently used, forgetting the least recently used past the cap. */
  set(key: K, value: V): this {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as K);
    return this;
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }
}
