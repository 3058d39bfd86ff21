/**
 * Structured logs: one JSON object per line, so Workers Logs (and `wrangler tail`) can filter on
 * any field. Every line has `level` and `event`; the usual fields name the object and the ids it
 * acts on. Never log message content, names or tokens: ids only.
 *
 * @example
 * log("warn", "fanout.stalled", { object: "channel", channel_id, lag: lastSeq - fanoutSeq });
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

export interface LogFields {
  /** Which kind of code logged it: worker, channel, user, presence, relay, queue. */
  object?: string;
  /** That object's own id (channel or user id, shard name). */
  id?: string;
  channel_id?: string;
  user_id?: string;
  device_id?: string;
  trace_id?: string;
  /** How long the logged operation took. */
  ms?: number;
  [field: string]: unknown;
}

/** Where lines go besides the console: tests add a sink to read what objects logged (same isolate). */
type LogSink = (line: Record<string, unknown>) => void;
const sinks = new Set<LogSink>();

/**
 * Also hands every line to `sink` until the returned function is called (tests: "this trace id
 * reached these log lines").
 *
 * @example
 * const lines: Record<string, unknown>[] = [];
 * const stop = alsoLogTo((l) => lines.push(l)); ...; stop();
 */
export function alsoLogTo(sink: LogSink): () => void {
  sinks.add(sink);
  return () => { sinks.delete(sink); };
}

export function log(level: LogLevel, event: string, fields: LogFields = {}, error?: unknown): void {
  const line: Record<string, unknown> = { level, event, ...fields };
  if (error !== undefined) line.error = errorText(error);
  for (const sink of sinks) {
    try { sink(line); } catch { /* a broken sink loses a line, nothing else */ }
  }
  const text = JSON.stringify(line);
  if (level === "error") console.error(text);
  else if (level === "warn") console.warn(text);
  else console.log(text);
}

function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`.slice(0, 500);
  return String(error).slice(0, 500);
}
