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

/** 32 lowercase hex digits, the W3C trace-id shape. */
export function newTraceId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The caller's trace id from `traceparent`, or a fresh one. (An all-zero id is invalid in W3C.) */
export function traceIdOf(request: Request): string {
  const id = TRACEPARENT.exec(request.headers.get("traceparent")?.trim().toLowerCase() ?? "")?.[1];
  return id && !/^0+$/.test(id) ? id : newTraceId();
}
