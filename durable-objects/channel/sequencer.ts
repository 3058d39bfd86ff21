/**
 * The channel's sequencer and message log: dedup on (sender, client_msg_id), the per-sender rate
 * limit, seq and HLC assignment, the INSERT, the mapping between stored rows and ChatMessageData,
 * and history pages.
 *
 * Everything here is synchronous on purpose. A message's check, its seq/HLC and its INSERT (with
 * the channel row's UPDATE) happen in one turn with no `await` in between: one implicit
 * transaction, and the output gate holds the SEND_ACK until it is durable.
 *
 * A batch (`inBatch`: the several SENDs a UserObject hands over in one appendBatch) is one turn
 * too, so its dedup lookups are made in one statement before it and the channel row is written
 * once after it, in the same transaction: three statements per message become one, plus two.
 */
import { fail, type Failure, type Result } from "../../shared/errors.js";
import { LIMITS } from "../../protocol/limits.js";
import { chunkMessages } from "../../protocol/frame-budget.js";
import { wellFormedDeep } from "../../protocol/text.js";
import { blob, contentForStorage, decodeContent, encodeContent, validateClientContent, validClientMsgId, type ContentKind, type StoredContent } from "./content.js";
import { HLC_ZERO, hlcToHex, nextHlc, serverMsgId, type Hlc } from "./hlc.js";
import type { SenderRateLimiter } from "./rate-limit.js";
import type { AppendInput, ChatMessageData, ContentInit, HistoryPageData, HistoryQuery, Reaction, SendAck } from "./types.js";
import { count } from "../../shared/metrics.js";

export type MessageRow = {
  seq: number;
  hlc_ms: number;
  hlc_logical: number;
  sender_user_id: string;
  sender_device_id: string;
  client_msg_id: string | null;
  kind: ContentKind;
  /** MessageContent bytes; proto-JSON in rows from before the content migration (content.ts). */
  content: StoredContent;
  server_ts: number;
  edited_at: number;
  deleted: number;
  reactions: string;
};

/**
 * A check of validated content against the channel's own state, run before the INSERT in the
 * same turn: it may replace the content (with what the channel knows better) and be told the seq.
 */
export type ContentGate = (userId: string, kind: ContentKind, content: ContentInit) => Result<{ content: ContentInit; stored?: (seq: number) => void }>;

export const SELECT_MESSAGES =
  "SELECT seq, hlc_ms, hlc_logical, sender_user_id, sender_device_id, client_msg_id, kind, content, server_ts, edited_at, deleted, reactions FROM messages";

type Stored = Pick<MessageRow, "seq" | "hlc_ms" | "hlc_logical" | "server_ts">;

/** A batch in progress: the rows its client_msg_ids already have, and whether the channel row is behind. */
interface Batch {
  /** Keyed by `dedupKey`; messages stored by the batch itself are added as they go. */
  stored: Map<string, Stored>;
  rowBehind: boolean;
}

const dedupKey = (userId: string, clientMsgId: string): string => `${userId}\u0000${clientMsgId}`;

export class Sequencer {
  private channelId = "";
  private hlc: Hlc = HLC_ZERO;
  private last = 0;
  private batch: Batch | undefined;

  /**
   * @param limiter shared with the object, which may change its limit (tests do)
   * @param onAppended called in the INSERT's turn with the message as members receive it
   * @param gate checks content that needs the channel's other tables (attachments), synchronously
   */
  constructor(
    private readonly sql: SqlStorage,
    private readonly limiter: SenderRateLimiter,
    private readonly onAppended: (message: ChatMessageData) => void,
    private readonly gate: ContentGate = (_userId, _kind, content) => ({ ok: true, content }),
  ) {}

  /** Resumes from the channel row (on wake) or starts a new channel (zeros). */
  start(channelId: string, lastSeq: number, hlc: Hlc): void {
    this.channelId = channelId;
    this.last = lastSeq;
    this.hlc = hlc;
  }

  get lastSeq(): number {
    return this.last;
  }

  get lastHlc(): Hlc {
    return this.hlc;
  }

  /**
   * Stores one message from a member (the caller checked membership) and returns its SEND_ACK.
   * A retry with the same (sender, client_msg_id) returns the original ids with status
   * "duplicate" and stores nothing. A sender over the rate gets `rate_limited`.
   */
  append(input: AppendInput): Result<{ ack: SendAck }> {
    if (!validClientMsgId(input.clientMsgId)) {
      return fail("invalid_argument", `client_msg_id must be 1-${LIMITS.maxClientMsgIdLength} printable ASCII characters (a UUID).`);
    }
    const existing = this.batch
      ? this.batch.stored.get(dedupKey(input.userId, input.clientMsgId))
      : this.storedAs(input.userId, input.clientMsgId);
    if (existing) {
      const hlc = { ms: existing.hlc_ms, logical: existing.hlc_logical };
      return { ok: true, ack: this.ack(input.clientMsgId, hlc, existing.seq, existing.server_ts, "duplicate") };
    }
    // After the dedup lookup: a retry of a stored message is answered, never limited.
    const wait = this.limiter.take(input.userId, Date.now());
    if (wait > 0) {
      return fail("rate_limited", `Slow down: at most ${this.limiter.limit.perSecond} messages per second per person in one channel.`, wait);
    }
    const valid = validateClientContent(input.content);
    if (!valid.ok) return valid;
    const accepted = this.gate(input.userId, valid.kind, valid.content);
    if (!accepted.ok) return accepted;
    // Sized as stored: the encoded MessageContent, whatever the body.
    const encoded = contentForStorage(accepted.content);
    if (!encoded.ok) return encoded;
    const stored = this.insert(input.userId, input.deviceId, input.clientMsgId, valid.kind, accepted.content, accepted.content, encoded.bytes);
    this.batch?.stored.set(dedupKey(input.userId, input.clientMsgId), { seq: stored.seq, hlc_ms: stored.hlc.ms, hlc_logical: stored.hlc.logical, server_ts: stored.server_ts });
    accepted.stored?.(stored.seq);
    return { ok: true, ack: this.ack(input.clientMsgId, stored.hlc, stored.seq, stored.server_ts, "stored") };
  }

  /** The message `userId` stored as `clientMsgId`, if any (a retry is answered from it). */
  private storedAs(userId: string, clientMsgId: string): Stored | undefined {
    return this.sql.exec<Stored>(
      "SELECT seq, hlc_ms, hlc_logical, server_ts FROM messages WHERE sender_user_id = ? AND client_msg_id = ?",
      userId, clientMsgId,
    ).toArray()[0];
  }

  /**
   * Runs `body` (which appends `inputs`, in order, each through `append`) as one batch: the
   * client_msg_ids already stored are read in one statement per sender before it, and the channel
   * row is written once after it. Synchronous, like everything here: the batch is one turn.
   */
  inBatch<T>(inputs: readonly AppendInput[], body: () => T): T {
    if (this.batch) return body();
    const stored = new Map<string, Stored>();
    const bySender = new Map<string, string[]>();
    for (const { userId, clientMsgId } of inputs) {
      if (typeof clientMsgId === "string") (bySender.get(userId) ?? bySender.set(userId, []).get(userId)!).push(clientMsgId);
    }
    for (const [userId, ids] of bySender) {
      // Most batches hold one SEND per sender: a plain lookup is a third of json_each's cost.
      if (ids.length === 1) {
        const row = this.storedAs(userId, ids[0]!);
        if (row) stored.set(dedupKey(userId, ids[0]!), row);
        continue;
      }
      const rows = this.sql.exec<Stored & { client_msg_id: string }>(
        "SELECT client_msg_id, seq, hlc_ms, hlc_logical, server_ts FROM messages WHERE sender_user_id = ? AND client_msg_id IN (SELECT value FROM json_each(?))",
        userId, JSON.stringify(ids),
      );
      for (const row of rows) stored.set(dedupKey(userId, row.client_msg_id), row);
    }
    this.batch = { stored, rowBehind: false };
    try {
      return body();
    } finally {
      const behind = this.batch.rowBehind;
      this.batch = undefined;
      if (behind) this.writeChannelRow();
    }
  }

  /** The rate limit for changes (react, edit, delete), which share a sender's bucket with sends. */
  limitChange(userId: string): Failure | undefined {
    const wait = this.limiter.take(userId, Date.now());
    if (wait <= 0) return undefined;
    return fail("rate_limited", `Slow down: at most ${this.limiter.limit.perSecond} messages and changes per second per person in one channel.`, wait);
  }

  /**
   * The sequencer proper: seq, HLC, the message row and the channel row in one implicit
   * transaction with no `await` in between. `delivered` is what members receive when it differs
   * from what is stored (a change carries its target).
   */
  insert(
    userId: string, deviceId: string, clientMsgId: string | null, kind: ContentKind, content: ContentInit,
    delivered: ContentInit = content, encoded: Uint8Array = encodeContent(content),
  ) {
    const now = Date.now();
    const hlc = nextHlc(this.hlc, now);
    const seq = this.last + 1;
    this.sql.exec(
      `INSERT INTO messages (seq, hlc_ms, hlc_logical, sender_user_id, sender_device_id, client_msg_id, kind, content, server_ts)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      seq, hlc.ms, hlc.logical, userId, deviceId, clientMsgId, kind, blob(encoded), now,
    );
    this.last = seq;
    this.hlc = hlc;
    if (this.batch) this.batch.rowBehind = true;
    else this.writeChannelRow();
    count("message.stored", 1, { kind });
    this.onAppended({
      channel_id: this.channelId, server_msg_id: serverMsgId(hlc, seq), hlc: hlcToHex(hlc), seq,
      client_msg_id: clientMsgId ?? "", sender_user_id: userId, sender_device_id: deviceId, server_ts: now, content: delivered,
    });
    return { seq, hlc, server_ts: now };
  }

  private writeChannelRow(): void {
    this.sql.exec("UPDATE channel SET last_seq = ?, hlc_ms = ?, hlc_logical = ? WHERE id = 1", this.last, this.hlc.ms, this.hlc.logical);
  }

  /**
   * A page of history, ascending by seq: `before` pages older, `after` pages newer (`after: 0`
   * from the first message); neither gives the newest page. The caller checked membership.
   */
  history(query: HistoryQuery): Result<HistoryPageData> {
    const limit = clampLimit(query.limit);
    let rows: MessageRow[];
    let hasMore: boolean;
    // Pages are cut to what one frame carries, so a page of large messages may hold fewer.
    if (query.after !== undefined && query.before === undefined) {
      rows = this.sql.exec<MessageRow>(`${SELECT_MESSAGES} WHERE seq > ? ORDER BY seq ASC LIMIT ?`, query.after, limit).toArray();
      const messages = chunkMessages(rows.map((r) => this.toMessage(r)))[0] ?? []; // the oldest that fit one frame
      const last = messages.at(-1)?.seq ?? query.after;
      hasMore = last < this.last;
      return this.page(messages, hasMore ? last : 0, hasMore);
    }
    const before = query.before !== undefined && query.before > 0 ? Math.min(query.before, this.last + 1) : this.last + 1;
    rows = this.sql.exec<MessageRow>(`${SELECT_MESSAGES} WHERE seq < ? ORDER BY seq DESC LIMIT ?`, before, limit).toArray();
    const messages = (chunkMessages(rows.map((r) => this.toMessage(r)))[0] ?? []).reverse(); // the newest that fit
    const first = messages[0]?.seq ?? 0;
    hasMore = first > 1 && this.sql.exec("SELECT 1 FROM messages WHERE seq < ? LIMIT 1", first).toArray().length > 0;
    return this.page(messages, hasMore ? first : 0, hasMore);
  }

  /** Up to `max` messages from `fromSeq` on, ascending. */
  read(fromSeq: number, max: number): ChatMessageData[] {
    return this.sql.exec<MessageRow>(`${SELECT_MESSAGES} WHERE seq >= ? ORDER BY seq ASC LIMIT ?`, fromSeq, max)
      .toArray().map((r) => this.toMessage(r));
  }

  /** Stored messages from `fromSeq` to `toSeq` (at most the last), at most `max` and 100: a relay catching a watcher up. */
  backlog(fromSeq: number, toSeq: number, max: number): ChatMessageData[] {
    const from = Math.max(1, Math.floor(fromSeq));
    const upTo = Math.min(Math.floor(toSeq), this.lastSeq);
    const n = Math.min(Math.max(0, Math.floor(max)), upTo - from + 1, 100);
    return n > 0 ? this.read(from, n) : [];
  }

  /** The stored row of `seq` (the caller checked 1 ≤ seq ≤ lastSeq); undefined once it expired (retention.ts). */
  row(seq: number): MessageRow | undefined {
    return this.sql.exec<MessageRow>(`${SELECT_MESSAGES} WHERE seq = ?`, seq).toArray()[0];
  }

  /** A stored row as clients see it; a change carries its target as it is now. */
  toMessage(r: MessageRow): ChatMessageData {
    const hlc = { ms: r.hlc_ms, logical: r.hlc_logical };
    // Text stored before the edges checked it is repaired here (docs/protocol.md, "Text"), in either stored form.
    let content = r.deleted ? {} : wellFormedDeep(decodeContent(r.content));
    if (r.kind === "update" && content.update) {
      const target = this.sql.exec<MessageRow>(`${SELECT_MESSAGES} WHERE seq = ?`, Number(content.update.target_seq)).toArray()[0];
      if (target) content = { update: { ...content.update, target: this.toMessage(target) } };
    }
    const m: ChatMessageData = {
      channel_id: this.channelId, server_msg_id: serverMsgId(hlc, r.seq), hlc: hlcToHex(hlc), seq: r.seq,
      client_msg_id: r.client_msg_id ?? "", sender_user_id: r.sender_user_id, sender_device_id: r.sender_device_id,
      server_ts: r.server_ts, content,
    };
    if (r.reactions !== "[]") m.reactions = parseReactions(r.reactions);
    if (r.edited_at) m.edited_at = r.edited_at;
    if (r.deleted) m.deleted = true;
    return m;
  }

  /** Messages from others after `afterSeq`: not notices, not changes, not deleted ones. */
  unreadCount(userId: string, afterSeq: number): number {
    return this.sql.exec<{ n: number }>(
      "SELECT count(*) AS n FROM messages WHERE seq > ? AND sender_user_id != ? AND kind NOT IN ('system', 'update') AND deleted = 0",
      afterSeq, userId,
    ).one().n;
  }

  private ack(clientMsgId: string, hlc: Hlc, seq: number, serverTs: number, status: SendAck["status"]): SendAck {
    return {
      channel_id: this.channelId, client_msg_id: clientMsgId, server_msg_id: serverMsgId(hlc, seq),
      hlc: hlcToHex(hlc), seq, server_ts: serverTs, status,
    };
  }

  private page(messages: ChatMessageData[], nextCursor: number, hasMore: boolean): Result<HistoryPageData> {
    return {
      ok: true, channel_id: this.channelId, messages,
      next_cursor: nextCursor, has_more: hasMore, last_seq: this.last,
    };
  }
}

/** Text stored before the edges checked it is repaired where it is read (docs/protocol.md, "Text"). */
export function parseReactions(json: string): Reaction[] {
  return wellFormedDeep(JSON.parse(json) as Reaction[]);
}

function clampLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit) || limit <= 0) return LIMITS.defaultPageSize;
  return Math.min(Math.floor(limit), LIMITS.maxPageSize);
}
