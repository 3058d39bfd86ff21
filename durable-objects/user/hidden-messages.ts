/**
 * Delete for me: messages this user removed from their own devices. Every message the UserObject
 * passes to a device (live, RESUME, history, change answers) goes through `mask()`.
 */
import type { ChatMessageData } from "../channel/types.js";

export class HiddenMessages {
  /** Marks by channel, loaded on first use. */
  private readonly byChannel = new Map<string, Set<number>>();
  /** False while the user has no mark at all: masking is then free. */
  private any = false;

  constructor(private readonly sql: SqlStorage) {}

  /** Called on wake (under blockConcurrencyWhile). */
  load(): void {
    this.any = this.sql.exec("SELECT 1 FROM hidden_messages LIMIT 1").toArray().length > 0;
  }

  /** Hides `seq` in `channelId`; false if it was hidden already. */
  hide(channelId: string, seq: number): boolean {
    const changed = this.sql.exec(
      "INSERT INTO hidden_messages (channel_id, seq, hidden_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", channelId, seq, Date.now(),
    ).rowsWritten > 0;
    this.in(channelId).add(seq);
    this.any = true;
    return changed;
  }

  /** Messages as this user sees them: those deleted for them (and changes to them) masked. */
  mask(messages: ChatMessageData[]): ChatMessageData[] {
    if (!this.any) return messages;
    return messages.map((m) => {
      const hidden = this.in(m.channel_id);
      if (hidden.has(m.seq)) return { ...hiddenMessage(m.channel_id, m.seq), server_msg_id: m.server_msg_id, hlc: m.hlc, server_ts: m.server_ts };
      const update = m.content.update;
      if (update?.target && hidden.has(Number(update.target_seq))) {
        return { ...m, content: { update: { ...update, target: hiddenMessage(m.channel_id, Number(update.target_seq)) } } };
      }
      return m;
    });
  }

  private in(channelId: string): Set<number> {
    let set = this.byChannel.get(channelId);
    if (!set) {
      set = new Set(this.sql.exec<{ seq: number }>("SELECT seq FROM hidden_messages WHERE channel_id = ?", channelId).toArray().map((r) => r.seq));
      this.byChannel.set(channelId, set);
    }
    return set;
  }
}

/** What a device learns of a message its user deleted for themselves: the seq, nothing else. */
export function hiddenMessage(channelId: string, seq: number): ChatMessageData {
  return {
    channel_id: channelId, server_msg_id: "", hlc: "", seq, client_msg_id: "", sender_user_id: "", sender_device_id: "",
    server_ts: 0, content: {}, hidden: true,
  };
}
