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
 *
 * `ErasureJob` is the row; `AccountErasure` runs the steps against a narrow host (the UserObject:
 * its sockets, channels, presence, D1 and R2), so the steps can be driven without any of those.
 */
import { finishErasure, markErasing, recordErasure } from "../../shared/account-erasure.js";
import { avatarKey } from "../../shared/avatars.js";
import { bucketFor } from "../../shared/bindings.js";
import { fail } from "../../shared/errors.js";
import { CLOSE } from "../../shared/frames.js";
import { parseId } from "../../shared/ids.js";
import { log } from "../../shared/log.js";
import { presenceStub } from "../../shared/routing.js";
import { sendErasureMessage, type ErasureMessage } from "../../queues/erasure-jobs.js";
import type { ErasureProgress } from "../channel/erasure.js";
import type { PushSubscriptions } from "./push-subscriptions.js";
import type { Sessions } from "./sessions.js";
import { closeAll } from "./socket-protocol.js";

/** What a deleted account's sockets are told, in the ERROR frame and as the close reason (the SDK shows the reason). */
export const ACCOUNT_DELETED = "This account is being deleted.";

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

/** The account directory in D1 (shared/account-erasure.ts): where operators follow the job. */
export interface ErasureDirectory {
  /** The directory row says the account is being deleted (sign-in and lookups stop finding it). */
  markErasing(userId: string, startedAt: number): Promise<void>;
  record(userId: string, step: ErasureStep, counts: ErasureCounts, at: number): Promise<void>;
  /** The directory row goes and the job is marked finished, in one batch. */
  finish(userId: string, counts: ErasureCounts, startedAt: number, at: number): Promise<void>;
}

/** What the steps need from the user's object. */
export interface ErasureHost {
  sql: SqlStorage;
  pushSubscriptions: PushSubscriptions;
  directory: ErasureDirectory;
  /** The user being erased: from memory or the profile row; undefined when no one lives here. */
  userId(): string | undefined;
  /** This instance wiped its storage already (a late call finds nothing to do). */
  wiped(): boolean;
  /** Every session ended and every socket closed, saying why; the number of sessions ended. */
  endSessions(): number;
  /** The user's contacts stop being watched and the user's own presence is forgotten. */
  forgetPresence(userId: string): Promise<void>;
  /** The channels the user is in (or was, while the list keeps the row). */
  channelIds(): string[];
  /** One bounded erasure call into a channel (channel/erasure.ts). */
  eraseInChannel(channelId: string, userId: string, limit: number): Promise<ErasureProgress>;
  deleteAvatar(userId: string): Promise<void>;
  /** Every socket closed, the alarm and every byte of storage deleted, nothing kept in memory. */
  wipe(): Promise<void>;
  /** Sends the job's queue message again. */
  redrive(userId: string): Promise<void>;
  waitUntil(promise: Promise<unknown>): void;
  wakeAt(at: number): void;
  now(): number;
  log: typeof log;
  /** Messages tombstoned per channel call. */
  batchSize: number;
  /** How long a job may stand still before the alarm re-drives it. */
  redriveMs: number;
}

/** The part of the host outside any object: D1's directory, R2's avatars, the queue, the settings. */
export type ErasureServices = Pick<ErasureHost, "directory" | "deleteAvatar" | "redrive" | "now" | "log" | "batchSize" | "redriveMs">;

export function erasureServices(env: Env): ErasureServices {
  const redriveMs = Number(env.ERASURE_REDRIVE_MS);
  return {
    directory: {
      markErasing: (userId, startedAt) => markErasing(env, userId, startedAt),
      record: (userId, step, counts, at) => recordErasure(env, userId, step, counts, at),
      finish: (userId, counts, startedAt, at) => finishErasure(env, userId, counts, startedAt, at),
    },
    deleteAvatar: (userId) => bucketFor(env, parseId(userId)?.jurisdiction ?? "").delete(avatarKey(userId)),
    redrive: (userId) => sendErasureMessage(env.ERASURE_QUEUE as Queue<ErasureMessage>, userId),
    now: () => Date.now(),
    log,
    batchSize: Number(env.ERASURE_BATCH_SIZE) || 200,
    redriveMs: Number.isFinite(redriveMs) && redriveMs > 0 ? redriveMs : REDRIVE_MS,
  };
}

/** The UserObject's parts the steps act on; `objectErasureHost` makes the steps' host of them. */
export interface ErasureObject {
  env: Env;
  ctx: DurableObjectState;
  sql: SqlStorage;
  sessions: Sessions;
  pushSubscriptions: PushSubscriptions;
  /** The user the instance holds in memory, if any (the profile row is read otherwise). */
  userId(): string | undefined;
  wiped(): boolean;
  /** The user's contacts stop being watched (presence.ts). */
  unwatchContacts(): Promise<void>;
  channelIds(): string[];
  channel(channelId: string): { eraseMember(userId: string, limit: number): Promise<ErasureProgress> };
  /** Storage is gone: empty tables as a fresh instance makes them, nothing held in memory written back. */
  reset(): void;
  waitUntil(promise: Promise<unknown>): void;
  wakeAt(at: number): void;
}

/** The steps' host over the UserObject itself: its sockets, sessions and storage, D1, R2, the queue. */
export function objectErasureHost(o: ErasureObject): ErasureHost {
  return {
    ...erasureServices(o.env),
    sql: o.sql,
    pushSubscriptions: o.pushSubscriptions,
    userId: () => o.userId() ?? o.sql.exec<{ user_id: string }>("SELECT user_id FROM profile WHERE id = 1").toArray()[0]?.user_id,
    wiped: () => o.wiped(),
    endSessions: () => {
      // Every socket hears why first; the sessions' own close then finds them closing already.
      closeAll(o.ctx, CLOSE.sessionRevoked, ACCOUNT_DELETED, fail("session_revoked", ACCOUNT_DELETED));
      return o.sessions.revokeAllBut("").length;
    },
    forgetPresence: async (userId) => {
      await o.unwatchContacts();
      await presenceStub(o.env, userId).forget(userId);
    },
    channelIds: () => o.channelIds(),
    eraseInChannel: (channelId, userId, limit) => o.channel(channelId).eraseMember(userId, limit),
    wipe: async () => {
      closeAll(o.ctx, CLOSE.sessionRevoked, ACCOUNT_DELETED);
      await o.ctx.storage.deleteAlarm();
      await o.ctx.storage.deleteAll();
      o.reset();
    },
    waitUntil: (promise) => o.waitUntil(promise),
    wakeAt: (at) => o.wakeAt(at),
  };
}

/** The erasure job's steps (the order and what each does: this file's header). */
export class AccountErasure {
  readonly job: ErasureJob;

  constructor(private readonly host: ErasureHost) {
    this.job = new ErasureJob(host.sql);
  }

  /** The job as operators see it (no content); undefined when none runs here. */
  state(): ErasureState | undefined {
    return this.job.state();
  }

  /**
   * Every session ends and every socket closes at once; the job is created (idempotent) and the
   * alarm set to re-drive it. The caller sends the first queue message.
   */
  start(): { created: boolean; state: ErasureState } {
    const ended = this.host.endSessions();
    const begun = this.job.begin(this.host.now(), ended);
    this.host.wakeAt(this.host.now() + this.host.redriveMs);
    return begun;
  }

  /** One bounded, idempotent step; with no job here (never started, or wiped) it is done. */
  async step(): Promise<{ done: boolean; step: ErasureStep }> {
    const { host } = this;
    const job = host.wiped() ? undefined : this.job.state();
    if (!job) return { done: true, step: "done" };
    const me = host.userId();
    if (!me) return { done: true, step: "done" };
    host.wakeAt(host.now() + host.redriveMs);
    let next: ErasureState;
    switch (job.step) {
      case "devices": {
        await host.directory.markErasing(me, job.started_at);
        const devices = host.sql.exec<{ n: number }>("SELECT count(*) AS n FROM devices").one().n;
        host.sql.exec("DELETE FROM device_cursors");
        host.sql.exec("DELETE FROM devices");
        host.sql.exec("DELETE FROM push_windows");
        for (const sub of host.pushSubscriptions.all()) host.pushSubscriptions.set(sub.deviceId, null);
        host.pushSubscriptions.forget();
        await host.forgetPresence(me);
        next = this.job.advance("channels", "", { devices }, host.now());
        break;
      }
      case "channels": {
        const channelId = host.channelIds().filter((id) => id > job.channel_cursor).sort()[0];
        if (channelId === undefined) {
          next = this.job.advance("avatar", job.channel_cursor, {}, host.now());
          break;
        }
        const r = await host.eraseInChannel(channelId, me, host.batchSize);
        // A duplicate message may have run this step alongside: read the job again after the call.
        const now = host.wiped() ? undefined : this.job.state();
        if (!now) return { done: true, step: "done" };
        const first = r.done && now.channel_cursor < channelId;
        next = this.job.advance("channels", first ? channelId : now.channel_cursor, {
          channels: first ? 1 : 0, messages: r.tombstoned, attachments: r.attachments,
        }, host.now());
        break;
      }
      case "avatar":
        await host.deleteAvatar(me);
        next = this.job.advance("wipe", job.channel_cursor, {}, host.now());
        break;
      default: {
        // The directory row goes and the job is marked finished in one D1 batch; then every byte
        // of this object. A crash between the two leaves the alarm set: it runs this step again.
        await host.directory.finish(me, job.counts, job.started_at, host.now());
        await host.wipe();
        host.log("info", "erasure.finished", { object: "user", user_id: me, ms: host.now() - job.started_at });
        return { done: true, step: "done" };
      }
    }
    await host.directory.record(me, next.step, next.counts, host.now());
    return { done: false, step: next.step };
  }

  /** The alarm: a job that stood still for the re-drive interval gets its queue message again. Answers when to look next. */
  onAlarm(now: number, me: string | undefined): number | undefined {
    const job = this.job.state();
    if (!job || !me) return undefined;
    if (now - job.progressed_at >= this.host.redriveMs) {
      this.host.log("warn", "erasure.redrive", { object: "user", user_id: me, step: job.step });
      this.host.waitUntil(this.host.redrive(me).catch((err) => {
        this.host.log("error", "erasure.redrive_failed", { object: "user", user_id: me }, err);
      }));
    }
    return now + this.host.redriveMs;
  }
}
