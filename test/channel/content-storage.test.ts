/**
 * Message content as bytes: the channel stores the encoded MessageContent, the content migration
 * turns rows of proto-JSON into it without changing what anyone reads, rows an older version
 * writes during a deploy still read, and content is sized as it is stored. Against a real channel
 * database taken back to the schema before the migration.
 */
import { describe, expect, it } from "vitest";
import { encodeFrame, pb } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { migrate } from "../../durable-objects/migrate.js";
import { CHANNEL_MIGRATIONS } from "../../durable-objects/channel/schema.js";
import { contentForStorage, convertContentToBytes, decodeContent, encodeContent, MAX_STORED_CONTENT_BYTES } from "../../durable-objects/channel/content.js";
import { HLC_ZERO } from "../../durable-objects/channel/hlc.js";
import { MessageChanges } from "../../durable-objects/channel/message-changes.js";
import { SenderRateLimiter } from "../../durable-objects/channel/rate-limit.js";
import { Sequencer } from "../../durable-objects/channel/sequencer.js";
import type { ContentInit } from "../../durable-objects/channel/types.js";
import { inFreshChannel } from "../helpers/object-sql.js";

const CHANNEL = "c_g_00000000000000000000000000";
const CONTENT_MIGRATION = CHANNEL_MIGRATIONS.indexOf(convertContentToBytes);
const THUMBNAIL = btoa(String.fromCharCode(...Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff)));

/** Contents as the code before the migration wrote them: JSON.stringify of what it was given. */
const OLD_ROWS: { kind: string; content: ContentInit; sender?: string; deleted?: boolean; reactions?: string }[] = [
  { kind: "system", content: { system: { event: "created", target_user_ids: [], actor_user_id: "u_a", text: 'Ann created the group "T"' } } },
  { kind: "system", content: { system: { event: "member_added", target_user_ids: ["u_b", "u_c"], actor_user_id: "u_a", text: "Ann added Bo and Cy" } } },
  { kind: "text", content: { text: { text: "hello 👋🏽\nsecond line \"quoted\" \\ tab\t and ünïcödé" } }, reactions: '[{"emoji":"👍","user_ids":["u_b"]}]' },
  {
    kind: "attachment",
    content: {
      attachment: {
        attachment_id: "a_c_g_00000000000000000000000000_abc", size_bytes: 123456, sha256: "ab".repeat(32), width: 800, height: 600,
        thumbnail: THUMBNAIL, thumbnail_type: "image/webp", content_type: "image/png", file_name: "photo.png", caption: "the view",
      },
    } as unknown as ContentInit,
  },
  { kind: "text", content: { text: { text: "gone" } }, deleted: true },
  { kind: "text", content: { text: { text: "x".repeat(LIMITS.maxContentBytes) } } },
  { kind: "update", content: { update: { target_seq: 3, kind: "reactions" } } },
  // Stored before the edges checked text: read repaired (U+FFFD) before and after alike.
  { kind: "text", content: { text: { text: "t\ud800wo" } } },
];

/** The channel's database as it was before the content migration, with rows the old code wrote. */
function oldChannel(sql: SqlStorage): Sequencer {
  const tables = sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").toArray();
  for (const { name } of tables) sql.exec(`DROP TABLE "${name}"`);
  migrate(sql, CHANNEL_MIGRATIONS.slice(0, CONTENT_MIGRATION));
  sql.exec("INSERT INTO channel (id, channel_id, type, name, created_by, created_at, last_seq) VALUES (1, ?, 'group', 'T', 'u_a', 0, ?)", CHANNEL, OLD_ROWS.length);
  OLD_ROWS.forEach((r, i) => oldInsert(sql, i + 1, r.kind, r.deleted ? "{}" : JSON.stringify(r.content), r.deleted ?? false, r.reactions ?? "[]"));
  return sequencer(sql, OLD_ROWS.length);
}

function oldInsert(sql: SqlStorage, seq: number, kind: string, content: string, deleted = false, reactions = "[]"): void {
  sql.exec(
    `INSERT INTO messages (seq, hlc_ms, hlc_logical, sender_user_id, sender_device_id, client_msg_id, kind, content, server_ts, deleted, reactions)
     VALUES (?, ?, 0, 'u_a', 'd', ?, ?, ?, ?, ?, ?)`,
    seq, 1_700_000_000_000 + seq, kind === "system" || kind === "update" ? null : `k${seq}`, kind, content, 1_700_000_000_000 + seq, deleted ? 1 : 0, reactions,
  );
}

function sequencer(sql: SqlStorage, lastSeq: number): Sequencer {
  const s = new Sequencer(sql, new SenderRateLimiter({ perSecond: 0, burst: 1 }), () => {});
  s.start(CHANNEL, lastSeq, { ms: 1_700_000_000_000 + lastSeq, logical: 0 });
  return s;
}

/** Everything a reader gets: the messages, a history page, and that page as frames in both encodings. */
function readAll(log: Sequencer) {
  const messages = log.read(1, 100);
  const page = log.history({ after: 0, limit: 100 });
  if (!page.ok) throw new Error(page.message);
  const frame = { type: pb.FrameType.HISTORY_PAGE, request_id: 7, history_page: page };
  return { messages, page, json: encodeFrame(frame, "json"), proto: Array.from(encodeFrame(frame, "proto") as Uint8Array) };
}

const storage = (sql: SqlStorage) => sql.exec<{ seq: number; t: string; n: number }>("SELECT seq, typeof(content) AS t, length(content) AS n FROM messages ORDER BY seq").toArray();

describe("message content as bytes", () => {
  it("the content migration turns proto-JSON rows into MessageContent bytes, and every row reads back as before", async () => {
    expect(CONTENT_MIGRATION).toBeGreaterThan(0);
    await inFreshChannel((sql) => {
      const before = readAll(oldChannel(sql));
      expect(storage(sql).every((r) => r.t === "text")).toBe(true);
      // The history page is all of it (nothing cut), so the comparison covers every row.
      expect(before.page.messages.map((m) => m.seq)).toEqual(OLD_ROWS.map((_, i) => i + 1));

      migrate(sql, CHANNEL_MIGRATIONS);
      expect(sql.exec<{ version: number }>("SELECT version FROM _schema").one().version).toBe(CHANNEL_MIGRATIONS.length);
      const rows = storage(sql);
      expect(rows.map((r) => r.t)).toEqual(OLD_ROWS.map(() => "blob"));
      // Each row holds exactly the encoding of what it held as JSON (a deleted one: nothing).
      expect(rows.map((r) => r.n)).toEqual(OLD_ROWS.map((r) => (r.deleted ? 0 : encodeContent(r.content).byteLength)));
      // Smaller than JSON, for the thumbnail's base64 most of all.
      expect(rows[3]!.n).toBeLessThan(JSON.stringify(OLD_ROWS[3]!.content).length * 0.8);

      const after = readAll(sequencer(sql, OLD_ROWS.length));
      expect(after.messages).toEqual(before.messages);
      expect(after.page).toEqual(before.page);
      expect(after.json).toBe(before.json);
      expect(after.proto).toEqual(before.proto);
      // The thumbnail reads back as the same base64, the change with its target as it is now.
      expect(after.messages[3]!.content.attachment).toMatchObject({ thumbnail: THUMBNAIL, width: 800, size_bytes: 123456 });
      expect(after.messages[6]!.content.update).toMatchObject({ target_seq: 3, kind: "reactions", target: { seq: 3, reactions: [{ emoji: "👍", user_ids: ["u_b"] }] } });

      expect(after.messages[7]!.content).toEqual({ text: { text: "t\uFFFDwo" } });

      // Running it again (a second wake) finds nothing to do.
      migrate(sql, CHANNEL_MIGRATIONS);
      convertContentToBytes(sql);
      expect(storage(sql)).toEqual(rows);
    });
  });

  it("reads a row an older version wrote after the migration (a deploy in progress), and edits it as bytes", async () => {
    await inFreshChannel((sql) => {
      oldChannel(sql);
      migrate(sql, CHANNEL_MIGRATIONS);
      // The previous version, still running this object for a moment, appends as it always did.
      oldInsert(sql, OLD_ROWS.length + 1, "text", JSON.stringify({ text: { text: "written the old way" } }));
      sql.exec("UPDATE channel SET last_seq = ?", OLD_ROWS.length + 1);
      const log = sequencer(sql, OLD_ROWS.length + 1);
      expect(log.read(OLD_ROWS.length + 1, 1)[0]!.content).toEqual({ text: { text: "written the old way" } });

      // New messages after it are bytes; all read in one order.
      const sent = log.append({ userId: "u_a", deviceId: "d", clientMsgId: "new-1", content: { text: { text: "written as bytes" } } });
      expect(sent.ok && sent.ack.seq).toBe(OLD_ROWS.length + 2);
      expect(storage(sql).slice(-2).map((r) => r.t)).toEqual(["text", "blob"]);
      expect(log.read(OLD_ROWS.length + 1, 5).map((m) => m.content.text?.text)).toEqual(["written the old way", "written as bytes"]);

      // An edit that changes nothing is seen as such on a JSON row; a real one stores bytes.
      const changes = new MessageChanges(sql, log, { requireMember: () => undefined, isAdmin: () => false, channelType: () => "group" });
      sql.exec("UPDATE messages SET server_ts = ? WHERE seq = ?", Date.now(), OLD_ROWS.length + 1);
      const same = changes.edit("u_a", "d", OLD_ROWS.length + 1, { text: { text: "written the old way" } });
      expect(same.ok && same.changed).toBe(false);
      const edited = changes.edit("u_a", "d", OLD_ROWS.length + 1, { text: { text: "edited" } });
      expect(edited.ok && [edited.changed, edited.message.content]).toEqual([true, { text: { text: "edited" } }]);
      expect(sql.exec<{ t: string }>("SELECT typeof(content) AS t FROM messages WHERE seq = ?", OLD_ROWS.length + 1).one().t).toBe("blob");
    });
  });

  it("reads a stored string that is not UTF-8 with U+FFFD instead of failing the page", () => {
    const bytes = Uint8Array.from([0x0a, 0x05, 0x0a, 0x03, 0x61, 0xff, 0x62]); // {text: {text: "a" 0xFF "b"}}
    expect(decodeContent(bytes.buffer)).toEqual({ text: { text: "a\uFFFDb" } });
    // What the channel writes is always UTF-8: a lone surrogate is repaired on the way in.
    expect(decodeContent(encodeContent({ text: { text: "x\udc00" } }).slice().buffer)).toEqual({ text: { text: "x\uFFFD" } });
  });

  it("sizes content by its encoding: a text at the limit is stored as its bytes plus the field tags; a body that encodes past the limit is refused", async () => {
    await inFreshChannel((sql) => {
      sql.exec("INSERT INTO channel (id, channel_id, type, name, created_by, created_at) VALUES (1, ?, 'group', 'T', 'u_a', 0)", CHANNEL);
      const log = new Sequencer(sql, new SenderRateLimiter({ perSecond: 0, burst: 1 }), () => {});
      log.start(CHANNEL, 0, HLC_ZERO);
      // 4-byte characters up to the limit: sized in UTF-8 bytes, never UTF-16 units or JSON escapes.
      const text = "😀".repeat(LIMITS.maxContentBytes / 4);
      const ok = log.append({ userId: "u_a", deviceId: "d", clientMsgId: "full", content: { text: { text } } });
      expect(ok.ok).toBe(true);
      const stored = sql.exec<{ t: string; n: number }>("SELECT typeof(content) AS t, length(content) AS n FROM messages WHERE seq = 1").one();
      // MessageContent{text: TextBody{text}}: a tag and a 3-byte length on each level.
      expect(stored).toEqual({ t: "blob", n: LIMITS.maxContentBytes + 8 });
      expect(decodeContent(log.row(1)!.content)).toEqual({ text: { text } });
      expect(log.append({ userId: "u_a", deviceId: "d", clientMsgId: "over", content: { text: { text: `${text}x` } } })).toMatchObject({ ok: false, code: "content_too_large" });

      // An attachment body is bounded as a whole, however its parts add up.
      const body = (caption: string) => ({ attachment: { attachment_id: "a_x", size_bytes: 1, thumbnail: THUMBNAIL, thumbnail_type: "image/webp", caption } }) as unknown as ContentInit;
      const fits = contentForStorage(body("c".repeat(32 * 1024)));
      expect(fits.ok && fits.bytes.byteLength).toBeLessThanOrEqual(MAX_STORED_CONTENT_BYTES);
      const over = contentForStorage(body("c".repeat(MAX_STORED_CONTENT_BYTES)));
      expect(over).toMatchObject({ ok: false, code: "content_too_large" });
      expect(!over.ok && over.message).toMatch(/encodes to \d+ bytes; the limit is 66560/);
      // Through a SEND the same check applies after the channel's own (here: a gate that passes anything).
      const open = new Sequencer(sql, new SenderRateLimiter({ perSecond: 0, burst: 1 }), () => {}, (_u, _k) => ({ ok: true, content: body("c".repeat(MAX_STORED_CONTENT_BYTES)) }));
      open.start(CHANNEL, log.lastSeq, log.lastHlc);
      expect(open.append({ userId: "u_a", deviceId: "d", clientMsgId: "big", content: { text: { text: "small" } } })).toMatchObject({ ok: false, code: "content_too_large" });
      expect(sql.exec<{ n: number }>("SELECT count(*) AS n FROM messages").one().n).toBe(1);
    });
  });
});
