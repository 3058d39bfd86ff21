/**
 * The channel's notice pump: tells a member's UserObject that they joined or left, so the
 * channel appears in (or leaves) their list. Watchers get posts; everyone else learns of a
 * channel only this way, so it is durable and retried: `members.notified = 0` until the call
 * succeeded for the member's current membership version.
 *
 * Never on the caller's path: creating a group of 1,000 answers at once and wakes no UserObject;
 * the pump then works through pages of ≤ NOTICE_PAGE due rows per alarm tick, a bounded number
 * of calls in flight, each under a deadline. Operators can change the page or pause the pump
 * (NOTICE_PAGE_SIZE, docs/decisions/025). What one notice costs, counted and profiled under
 * `wrangler dev`, and why the pump is not paced further: docs/decisions/030.
 */
import { withDeadline, mapLimited } from "../../shared/deadline.js";
import { log } from "../../shared/log.js";
import { count } from "../../shared/metrics.js";
import type { MemberChannelState, MembershipNotice } from "./types.js";

export const NOTICE_PAGE = 100;
/**
 * While the pump is paused (NOTICE_PAGE_SIZE = "0"), a channel with pending notices looks again
 * this often, so setting the var back resumes every channel without any other traffic.
 */
export const NOTICE_PAUSED_RECHECK_MS = 60_000;
export const NOTICE_CONCURRENCY = 16;
export const NOTICE_DEADLINE_MS = 10_000;
export const NOTICE_RETRY_MS = 1000;
/** Retries back off to at most this; a notice is never given up on. */
export const NOTICE_RETRY_MAX_MS = 10 * 60_000;

export interface NoticeEndpoint {
  membershipChanged(notice: MembershipNotice): Promise<unknown>;
}

export interface NoticeDeps {
  sql: SqlStorage;
  id(): string;
  /** The member's view of the channel now (member: false for one who left). */
  stateFor(userId: string): MemberChannelState;
  userStub(userId: string): NoticeEndpoint;
  wakeAt(at: number): void;
  /** Notices per alarm tick (NOTICE_PAGE_SIZE); 0 pauses the pump. NOTICE_PAGE when absent. */
  pageSize?: number;
}

/**
 * The pump's page from the Worker's var NOTICE_PAGE_SIZE: an operator setting (docs/decisions/025).
 * Unset or not an integer in 0..1,000: NOTICE_PAGE. "0" pauses the pump: notices stay pending on
 * disk and are sent once the var is above 0 again.
 */
export function noticePageFromEnv(env: { NOTICE_PAGE_SIZE?: string }): number {
  const v = env.NOTICE_PAGE_SIZE;
  if (v === undefined || v.trim() === "") return NOTICE_PAGE;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 && n <= 1000 ? n : NOTICE_PAGE;
}

type Due = { user_id: string; version: number; notice_attempts: number };

export class Notices {
  private running: Promise<void> | undefined;
  /** The run of pages under way (since pending notices were last found): for its log line. */
  private run: { startedAt: number; sent: number; failed: number } | undefined;

  constructor(private readonly deps: NoticeDeps) {}

  /** Sends due notices unless a tick runs already. */
  kick(): Promise<void> {
    this.running ??= this.tick().finally(() => { this.running = undefined; });
    return this.running;
  }

  private get pageSize(): number {
    return this.deps.pageSize ?? NOTICE_PAGE;
  }

  /** When the next pending notice is due, if any (while paused: the next look, a minute on). */
  nextDue(): number | undefined {
    const row = this.deps.sql.exec<{ at: number | null }>("SELECT min(notice_at) AS at FROM members WHERE notified = 0").one();
    if (row.at === null) return undefined;
    return this.pageSize === 0 ? Math.max(row.at, Date.now() + NOTICE_PAUSED_RECHECK_MS) : row.at;
  }

  private async tick(): Promise<void> {
    if (this.pageSize === 0) {
      const next = this.nextDue();
      if (next !== undefined) this.deps.wakeAt(next);
      return;
    }
    const now = Date.now();
    const due = this.deps.sql.exec<Due>(
      "SELECT user_id, version, notice_attempts FROM members WHERE notified = 0 AND notice_at <= ? ORDER BY notice_at LIMIT ?", now, this.pageSize,
    ).toArray();
    if (due.length === 0) return this.wakeForNext();
    const run = (this.run ??= { startedAt: now, sent: 0, failed: 0 });
    const outcomes = await mapLimited(due, NOTICE_CONCURRENCY, (row) => this.send(row));
    // The page's told members in one statement, one commit (not one per call as each returned):
    // a restart before it only tells them again, which their lists take as the same row.
    const told = due.filter((_, i) => outcomes[i]).map((row) => [row.user_id, row.version]);
    if (told.length > 0) {
      this.deps.sql.exec(
        "UPDATE members SET notified = 1, notice_attempts = 0 WHERE (user_id, version) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))",
        JSON.stringify(told),
      );
    }
    const sent = told.length;
    run.sent += sent;
    run.failed += due.length - sent;
    log("debug", "notice.page", { object: "channel", id: this.deps.id(), notices: due.length, failed: due.length - sent, ms: Date.now() - now });
    this.wakeForNext();
  }

  /** Asks for the alarm at the next pending notice; with none left, logs the run that just ended. */
  private wakeForNext(): void {
    const next = this.nextDue();
    if (next !== undefined) return this.deps.wakeAt(Math.max(next, Date.now()));
    if (!this.run) return;
    // Operators (and bench/group-create.ts) see when every member of a large add has been told;
    // a DM's or a small group's notices are a debug line.
    log(this.run.sent + this.run.failed >= NOTICE_PAGE ? "info" : "debug", "notice.drained", { object: "channel", id: this.deps.id(), sent: this.run.sent, failed: this.run.failed, ms: Date.now() - this.run.startedAt });
    this.run = undefined;
  }

  /** Tells one member; true once their object took it (the page marks it), false when it is retried later. */
  private async send(row: Due): Promise<boolean> {
    const notice: MembershipNotice = { state: this.deps.stateFor(row.user_id), membership_seq: row.version };
    try {
      count("notice.rpc");
      await withDeadline(this.deps.userStub(row.user_id).membershipChanged(notice), NOTICE_DEADLINE_MS, "membership notice");
      // Marked told at the end of the page, this version only: a change made meanwhile is told in its own notice.
      return true;
    } catch (err) {
      const attempts = row.notice_attempts + 1;
      const wait = Math.min(NOTICE_RETRY_MAX_MS, NOTICE_RETRY_MS * 2 ** Math.min(20, attempts - 1));
      this.deps.sql.exec("UPDATE members SET notice_attempts = ?, notice_at = ? WHERE user_id = ? AND version = ?", attempts, Date.now() + wait, row.user_id, row.version);
      count("notice.failed");
      log("warn", "notice.failed", { object: "channel", id: this.deps.id(), user_id: row.user_id, attempts }, err);
      return false;
    }
  }
}
