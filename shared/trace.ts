/**
 * Trace ids: one per REST request and one per client frame, so one id finds every log line a
 * request or a SEND caused, in the Worker and in each object it reached. A request that carries a
 * W3C `traceparent` keeps its trace id (a caller's own tracing joins ours); otherwise the edge
 * mints one. Responses return it in `x-trace-id`, and error bodies in `trace_id`, so a user's bug
 * report can name it.
 */
export const TRACE_HEADER = "x-trace-id";

/** Whether `v` is a trace id as minted here (checked where one crosses an RPC or a queue). */
export function isTraceId(v: unknown): v is string {
  return typeof v === "string" && /^[0-9a-f]{32}$/.test(v);
}

/**
 * What a queue message carries to join the trace that caused it: put `trace_id` in the body
 * (`{ ...body, ...traced(traceId) }`) and read it back on the consumer side with `traceOf(body)`,
 * so the consumer's log lines carry it too.
 */
export interface Traced {
  trace_id?: string;
}

/** `{ trace_id }` when there is a trace id, `{}` otherwise: for spreading into bodies and log fields. */
export function traced(traceId: string | undefined): Traced {
  return isTraceId(traceId) ? { trace_id: traceId } : {};
}

/** The trace id a queue body (or any RPC argument) carries, if it is one. */
export function traceOf(body: unknown): string | undefined {
  const v = typeof body === "object" && body !== null ? (body as Traced).trace_id : undefined;
  return isTraceId(v) ? v : undefined;
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
/** Random bytes for the next 256 ids: every client frame gets one, and asking the runtime for 16 bytes at a time showed in a message's CPU. */
const pool = new Uint8Array(16 * 256);
let used = pool.length;

/** 32 lowercase hex digits of fresh randomness, the W3C trace-id shape. */
export function newTraceId(): string {
  if (used === pool.length) {
    crypto.getRandomValues(pool);
    used = 0;
  }
  let id = "";
  for (let i = used; i < used + 16; i++) id += HEX[pool[i]!];
  used += 16;
  return id;
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The caller's trace id from `traceparent`, or a fresh one. (An all-zero id is invalid in W3C.) */
export function traceIdOf(request: Request): string {
  const id = TRACEPARENT.exec(request.headers.get("traceparent")?.trim().toLowerCase() ?? "")?.[1];
  return id && !/^0+$/.test(id) ? id : newTraceId();
}
