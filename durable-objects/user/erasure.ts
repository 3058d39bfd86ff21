/**
 * The erasure job of one user (DELETE /v1/me, docs/decisions/020). Its durable state is one row
 * in the UserObject's own storage; the queue (queues/erasure-*.ts) only drives the next step, and
 * the object's alarm re-drives a job whose message was lost (local queues live in memory, a
 * message can be dropped by a restart). Every step is idempotent and bounded: running one twice,
 * or after a crash halfway, does no harm and ends in the same state.
 *
 * Steps, in order:
 *   sessions  every session ended, every socket closed (done by `start`, in the request's call)
 *   devices   devices, push subscriptions and push windows deleted; presence forgotten
 *   channels  one channel call per step: a batch of the user's messages tombstoned, then their
 *             uploads deleted from R2 and their membership removed (channel/erasure.ts)
 *   avatar    the avatar deleted from R2
 *   wipe      the directory row deleted and the job marked finished in D1 (one batch), then
 *             the object's whole storage (`deleteAll()`): the username is free from here on
 *
 * Operators see the step and counts in D1's `erasures` table (GET /v1/admin/erasures/{id}); no
 * name or content is ever written there.
 */

export type ErasureStep = "devices" | "channels" | "avatar" | "wipe" | "done";

export interface ErasureCounts {
  sessions: number;
  devices: number;
  channels: number;
  messages: number;
  attachments: number;
}

export interface ErasureState {
  step: ErasureStep;
  /** Channels are erased in id order; the last one finished. */
  channel_cursor: string;
  counts: ErasureCounts;
  started_at: number;
  /** When a step last ran: the alarm re-drives a job that has not moved for REDRIVE_MS. */
  progressed_at: number;
}

/** The schema this module needs (USER_MIGRATIONS appends it). */
export const ERASURE_MIGRATION = `
  -- The erasure job (docs/decisions/020); one row while the account is being deleted.
  CREATE TABLE erasure (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    step           TEXT NOT NULL,
    channel_cursor TEXT NOT NULL DEFAULT '',
    counts         TEXT NOT NULL DEFAULT '{}',
    started_at     INTEGER NOT NULL,
    progressed_at  INTEGER NOT NULL
  );
`;

/** A job whose last step is older than this is driven again from the alarm. */
export const REDRIVE_MS = 30_000;

const NO_COUNTS: ErasureCounts = { sessions: 0, devices: 0, channels: 0, messages: 0, attachments: 0 };

export class ErasureJob {
  constructor(private readonly sql: SqlStorage) {}

  /** The job, if the account is being erased. */
  state(): ErasureState | undefined {
    const row = this.sql.exec<{ step: ErasureStep; channel_cursor: string; counts: string; started_at: number; progressed_at: number }>(
      "SELECT step, channel_cursor, counts, started_at, progressed_at FROM erasure WHERE id = 1",
    ).toArray()[0];
    if (!row) return undefined;
    return { ...row, counts: { ...NO_COUNTS, ...(JSON.parse(row.counts) as Partial<ErasureCounts>) } };
  }

  /** Creates the job at its first queued step; an existing job is returned as it is. */
  begin(now: number, sessionsEnded: number): { state: ErasureState; created: boolean } {
    const existing = this.state();
    if (existing) return { state: existing, created: false };
    const counts = { ...NO_COUNTS, sessions: sessionsEnded };
    this.sql.exec(
      "INSERT INTO erasure (id, step, channel_cursor, counts, started_at, progressed_at) VALUES (1, 'devices', '', ?, ?, ?)",
      JSON.stringify(counts), now, now,
    );
    return { state: this.state()!, created: true };
  }

  /** Records a step's outcome: the next step, the cursor, counts added. */
  advance(step: ErasureStep, cursor: string, added: Partial<ErasureCounts>, now: number): ErasureState {
    const current = this.state()!;
    const counts = { ...current.counts };
    for (const [k, v] of Object.entries(added) as [keyof ErasureCounts, number][]) counts[k] += v;
    this.sql.exec(
      "UPDATE erasure SET step = ?, channel_cursor = ?, counts = ?, progressed_at = ? WHERE id = 1",
      step, cursor, JSON.stringify(counts), now,
    );
    return this.state()!;
  }
}
