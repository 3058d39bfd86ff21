/**
 * A channel's own settings (PATCH /v1/channels/{id}): its name and the lifetime of its messages.
 * `retention_ms` (null = the server default) is changed by a group's or broadcast channel's owners
 * and admins, or by either member of a DM; `name` by owners and admins of a group or broadcast
 * channel. Each change is logged as a system message with ids only; a value equal to the current
 * one changes and logs nothing. Synchronous: the change and its notice are one commit.
 */
import { fail, type Failure, type Result } from "../../shared/errors.js";
import type { Membership } from "./membership.js";
import { checkRetention, retentionText, type Retention } from "./retention.js";
import type { Sequencer } from "./sequencer.js";
import type { ChannelDetails } from "./types.js";
import type { ChannelRow } from "./views.js";

/** PATCH /v1/channels/{id}: absent fields stay as they are. */
export interface ChannelPatch {
  /** null: back to the server default (DEFAULT_RETENTION_MS). */
  retention_ms?: number | null;
  name?: string;
}

export interface SettingsHost {
  sql: SqlStorage;
  members: Membership;
  retention: Retention;
  log: Sequencer;
  /** The channel row, changed in place on a rename (only asked for once the channel exists). */
  row(): ChannelRow;
  requireMember(userId: string): Failure | undefined;
  appendSystem(actorId: string, body: { event: string; target_user_ids: string[] }, name?: string): void;
  wakeAt(at: number): void;
  details(viewer: string): ChannelDetails;
}

export function changeSettings(host: SettingsHost, actorId: string, patch: ChannelPatch): Result<{ channel: ChannelDetails }> {
  const denied = host.requireMember(actorId);
  if (denied) return denied;
  const c = host.row();
  const dm = c.type === "dm";
  if (patch.retention_ms === undefined && patch.name === undefined) return fail("invalid_argument", "Give retention_ms or name.");
  if (!dm && !host.members.isAdmin(actorId)) return fail("forbidden", "Only the channel's owner and admins can change its settings.");
  if (patch.name !== undefined && dm) return fail("invalid_argument", "A DM has no name.");
  const retention = patch.retention_ms === undefined ? undefined : checkRetention(patch.retention_ms, host.retention.config);
  if (retention && !retention.ok) return retention;
  if (patch.name !== undefined && patch.name !== c.name) {
    host.sql.exec("UPDATE channel SET name = ? WHERE id = 1", patch.name);
    c.name = patch.name;
    host.appendSystem(actorId, { event: "renamed", target_user_ids: [] }, patch.name);
  }
  if (retention && retention.value !== host.retention.setting) {
    host.retention.set(retention.value);
    const effective = host.retention.ttlMs;
    host.log.insert(actorId, "", null, "system", {
      system: { event: "retention_set", actor_user_id: actorId, target_user_ids: [], text: retentionText(effective), retention_ms: effective },
    });
    // Messages older than a shorter lifetime go at once, in batches from the alarm.
    const expiresAt = host.retention.due();
    if (expiresAt !== undefined) host.wakeAt(expiresAt);
  }
  return { ok: true, channel: host.details(actorId) };
}
