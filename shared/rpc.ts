/**
 * Workers RPC results handed on. Every object an RPC call returns comes with a disposer
 * (`Symbol.dispose`, not enumerable). Returned as is from our own RPC method, it tells the runtime
 * that *our* caller must dispose the result; callers that do not (the Worker answering a REST
 * request) leave it to the garbage collector, and workerd warns "An RPC result was not disposed
 * properly". So a result we pass up is copied first, and the one we received is disposed.
 *
 * @example
 * const page = await channelStub(env, id).history(me, query);
 * if (!page.ok) return ownResult(page);
 */
const DISPOSE: symbol | undefined = (Symbol as { dispose?: symbol }).dispose;

/** A shallow copy of `result` without its disposer; `result` itself is disposed. */
export function ownResult<T extends object>(result: T): T {
  const copy = { ...result };
  disposeResult(result);
  return copy;
}

/** Releases what an RPC result holds on the other side (nothing, for plain data: then it is free). */
export function disposeResult(result: unknown): void {
  if (DISPOSE === undefined || typeof result !== "object" || result === null) return;
  const dispose = (result as Record<symbol, unknown>)[DISPOSE];
  if (typeof dispose === "function") dispose.call(result);
}
