/**
 * Reads what a `wrangler dev` server's objects counted, from its output: with METRICS_LOG = "1"
 * every `count()` is a JSON log line (shared/analytics.ts), and with COUNT_SQL_WRITES = "1" every
 * writing SQL statement is counted (durable-objects/counted-sql.ts). Lines are reassembled from
 * the raw stream (test/support/lines.ts: a chunk may end mid-line), so none is lost or split. Node-side only.
 *
 * @example
 * const lines = new ServerLines(server.process);
 * const mark = lines.mark();
 * ... post, wait for `lines.find(mark, (l) => l.event === "fanout.round_done" && l.seq === seq)` ...
 * const work = postWork(lines.since(mark, end));
 */
import type { ChildProcess } from "node:child_process";
import { eachLine } from "./lines.js";

export type LogLine = Record<string, unknown> & { event?: string };

export class ServerLines {
  private readonly lines: LogLine[] = [];

  constructor(child: ChildProcess) {
    for (const stream of [child.stdout, child.stderr]) if (stream) eachLine(stream, (line) => this.take(line));
  }

  private take(raw: string): void {
    const start = raw.indexOf("{\"level\"");
    if (start < 0) return;
    try {
      this.lines.push(JSON.parse(raw.slice(start)) as LogLine);
    } catch {
      // not one of ours
    }
  }

  /** A position in the stream of parsed lines. */
  mark(): number {
    return this.lines.length;
  }

  /** The index of the first line at or after `from` that `test` accepts, or -1. */
  find(from: number, test: (l: LogLine) => boolean): number {
    for (let i = from; i < this.lines.length; i++) if (test(this.lines[i]!)) return i;
    return -1;
  }

  /** Lines from `from` up to and including `to` (default: everything so far). */
  since(from: number, to = this.lines.length - 1): LogLine[] {
    return this.lines.slice(from, to + 1);
  }
}

/** The work of an interval, as counted by the objects. */
export interface Work {
  /** fanout.rpc by caller → callee: deliveries made by channels and relays. */
  channelToRelay: number;
  channelToUser: number;
  relayToUser: number;
  /** Statements that wrote rows, by object kind. */
  channelWrites: number;
  relayWrites: number;
  userWrites: number;
  /** Membership notices sent (the pump). */
  notices: number;
  /** Rounds run by channels and by relays. */
  channelRounds: number;
  relayRounds: number;
}

function total(lines: readonly LogLine[], metric: string, where: Record<string, string> = {}): number {
  let n = 0;
  for (const l of lines) {
    if (l.event !== "metric" || l.metric !== metric) continue;
    const tags = (l.tags ?? {}) as Record<string, string>;
    if (Object.entries(where).every(([k, v]) => tags[k] === v)) n += Number(l.n ?? 0);
  }
  return n;
}

export function workOf(lines: readonly LogLine[]): Work {
  return {
    channelToRelay: total(lines, "fanout.rpc", { from: "channel", to: "relay" }),
    channelToUser: total(lines, "fanout.rpc", { from: "channel", to: "user" }),
    relayToUser: total(lines, "fanout.rpc", { from: "relay", to: "user" }),
    channelWrites: total(lines, "sql.write", { object: "channel" }),
    relayWrites: total(lines, "sql.write", { object: "relay" }),
    userWrites: total(lines, "sql.write", { object: "user" }),
    notices: total(lines, "notice.rpc"),
    channelRounds: total(lines, "fanout.round"),
    relayRounds: total(lines, "relay.round"),
  };
}
