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

export function log(level: LogLevel, event: string, fields: LogFields = {}, error?: unknown): void {
  const line: Record<string, unknown> = { level, event, ...fields };
  if (error !== undefined) line.error = errorText(error);
  const text = JSON.stringify(line);
  if (level === "error") console.error(text);
  else if (level === "warn") console.warn(text);
  else console.log(text);
}

function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`.slice(0, 500);
  return String(error).slice(0, 500);
}
