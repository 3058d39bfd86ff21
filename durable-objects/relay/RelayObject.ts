/**
 * RelayObject: one shard of a large channel's watchers (docs/decisions/017-relay-tier.md). The
 * channel sends each fan-out round once to every shard that has watchers (its own thread does
 * O(shards) per batch); the shard delivers it to its watchers' UserObjects with bounded
 * concurrency, a deadline per call and its own durable retry rows. The work is in `relay.ts`;
 * this file is the RPC surface, the identity check and the alarm.
 *
 * Named `relay:<channel id>:<shard>` in the channel's jurisdiction (shared/routing.ts relayStub).
 * Only the channel calls it. Like every object it checks that it runs where its channel's id
 * says (durable-objects/placement.ts): a shard reached in another jurisdiction refuses every call.
 */
import { DurableObject } from "cloudflare:workers";
import { fail, type Failure, type Result } from "../../shared/errors.js";
import { channelStub, userStub } from "../../shared/routing.js";
import { observe } from "../../shared/observability.js";
import { parseId } from "../../shared/ids.js";
import { count } from "../../shared/metrics.js";
import { countedSqlFor } from "../counted-sql.js";
import { Placement, refuseWhenMisplaced } from "../placement.js";
import { migrate } from "../migrate.js";
import type { ChannelSignal } from "../channel/types.js";
import { Relay, type RelayBatch, type RelayDelivered, type RelayWatcher } from "./relay.js";
import { RELAY_MIGRATIONS } from "./schema.js";

export type { RelayBatch, RelayDelivered, RelayWatcher };

export class RelayObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private identity: { channel_id: string; shard: number } | undefined;
  private relay!: Relay;
  private alarmAt: number | null = null;
  private readonly placement: Placement;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    observe(env);
    this.sql = countedSqlFor(ctx.storage.sql, "relay", env);
    this.placement = new Placement(ctx, env, "relay");
    void ctx.blockConcurrencyWhile(async () => {
      migrate(this.sql, RELAY_MIGRATIONS);
      this.identity = this.sql.exec<{ channel_id: string; shard: number }>("SELECT channel_id, shard FROM relay WHERE id = 1").toArray()[0];
      if (this.identity && !this.placement.verify(this, jurisdictionOf(this.identity.channel_id), this.identity.channel_id)) return;
      this.relay = new Relay({
        sql: this.sql,
        id: () => (this.identity ? `${this.identity.channel_id}:${this.identity.shard}` : ""),
        userStub: (userId) => userStub(env, userId),
        channel: () => channelStub(env, this.identity!.channel_id),
        wakeAt: (at) => this.wakeAt(at),
        waitUntil: (promise) => ctx.waitUntil(promise),
      });
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  /** Registers watchers of `channelId` at this shard; answers those registered (stale ones are left out). */
  register(channelId: string, shard: number, watchers: RelayWatcher[]): Result<{ registered: RelayWatcher[]; watchers: number }> {
    const denied = this.bind(channelId, shard);
    if (denied) return denied;
    return { ok: true, registered: this.relay.register(watchers), watchers: this.relay.size };
  }

  /**
   * Stops delivering to these watchers (as of their epochs): the channel's pump tells each unwatch,
   * leave or removal here once the rounds before it went out.
   */
  unregister(channelId: string, shard: number, watchers: RelayWatcher[]): Result<{ watchers: number }> {
    const denied = this.bind(channelId, shard);
    if (denied) return denied;
    for (const w of watchers) this.relay.unregister(w.user_id, w.epoch);
    count("relay.unregister", watchers.length);
    return { ok: true, watchers: this.relay.size };
  }

  /** These users' accounts are erased: every row naming them goes, whatever the epoch. */
  forget(channelId: string, shard: number, userIds: string[]): Result<{ watchers: number }> {
    const denied = this.bind(channelId, shard);
    if (denied) return denied;
    this.relay.forget(userIds);
    return { ok: true, watchers: this.relay.size };
  }

  /**
   * One fan-out round. Answers once every watcher has the batch or has a durable retry row, with
   * the watchers that turned out to have no device connected (the channel unwatches them).
   */
  async deliver(batch: RelayBatch): Promise<Result<RelayDelivered>> {
    const denied = this.bind(batch.channel_id, batch.shard);
    if (denied) return denied;
    return { ok: true, ...(await this.relay.deliver(batch)) };
  }

  /** A typing indicator or read receipt to this shard's watchers but `fromUserId`; best effort. */
  signal(channelId: string, shard: number, fromUserId: string, event: ChannelSignal): Result {
    const denied = this.bind(channelId, shard);
    if (denied) return denied;
    this.relay.signal(fromUserId, event);
    return { ok: true };
  }

  /** For tests and operators: who this shard delivers to. */
  describe(): { channel_id: string; shard: number; watchers: number; retries: number } | undefined {
    if (!this.identity) return undefined;
    return { ...this.identity, watchers: this.relay.size, retries: this.relay.retryCount };
  }

  override async alarm(): Promise<void> {
    this.alarmAt = null;
    if (!this.identity) return;
    await this.relay.onAlarm();
  }

  /** The first call names the channel and shard this object serves; later calls must agree. */
  private bind(channelId: string, shard: number): Failure | undefined {
    if (!this.identity) {
      const refused = this.placement.admit(jurisdictionOf(channelId), channelId);
      if (refused) return refused;
      this.sql.exec("INSERT INTO relay (id, channel_id, shard) VALUES (1, ?, ?)", channelId, shard);
      this.identity = { channel_id: channelId, shard };
      return undefined;
    }
    if (this.identity.channel_id !== channelId || this.identity.shard !== shard) {
      return fail("invalid_argument", "This relay serves another channel or shard.");
    }
    return undefined;
  }

  private wakeAt(at: number): void {
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    void this.ctx.storage.setAlarm(at);
  }
}

refuseWhenMisplaced(RelayObject);

/** The jurisdiction a channel id names ("" for the default). */
function jurisdictionOf(channelId: string): string {
  return parseId(channelId)?.jurisdiction ?? "";
}
