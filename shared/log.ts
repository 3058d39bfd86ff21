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

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
/** Lines below this level are not printed (LOG_LEVEL; sinks still get every line). */
let printFrom = RANK.info;

/**
 * The lowest level printed: `LOG_LEVEL` ("debug", "info", "warn", "error"; default "info").
 * Debug lines follow one message through every object (docs/operations.md "Trace ids"): one line
 * per recipient per message, so they are off unless an operator turns them on.
 */
export function setLogLevel(level: string | undefined): void {
  printFrom = RANK[(level ?? "") as LogLevel] ?? RANK.info;
}

/** Whether a line at `level` goes anywhere: skip building costly fields when it does not. */
export function logsAt(level: LogLevel): boolean {
  return RANK[level] >= printFrom || sinks.size > 0;
}

export function log(level: LogLevel, event: string, fields: LogFields = {}, error?: unknown): void {
  if (!logsAt(level)) return;
  const line: Record<string, unknown> = { level, event, ...fields };
  if (error !== undefined) line.error = errorText(error);
  for (const sink of sinks) {
    try { sink(line); } catch { /* a broken sink loses a line, nothing else */ }
  }
  if (RANK[level] < printFrom) return;
  const text = JSON.stringify(line);
  if (level === "error") console.error(text);
  else if (level === "warn") console.warn(text);
  else console.log(text);
}

function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`.slice(0, 500);
  return String(error).slice(0, 500);
}
