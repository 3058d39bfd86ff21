/**
 * Attachment ids name their channel, so any Worker routes a download or an upload to the one
 * ChannelObject that knows the attachment without a lookup (like user and channel ids, they hold
 * no personal data):
 *
 *   a_<j>_<channel's 26 base32>_<26 random base32>   for the channel c_<j>_<channel's 26 base32>
 *
 * The id is also the blob's key in R2.
 */
const ATTACHMENT_ID = /^a_(g|eu|fr)_([0-9a-z]{26})_([0-9a-z]{26})$/;
const CHANNEL_ID = /^c_(g|eu|fr)_([0-9a-z]{26})$/;
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, as in shared/ids.ts

function randomBase32(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = "";
  for (const b of bytes) out += ALPHABET[b & 31];
  return out;
}

/** A new attachment id in `channelId` (130 random bits). */
export function newAttachmentId(channelId: string): string {
  const m = CHANNEL_ID.exec(channelId);
  if (!m) throw new TypeError(`Not a channel id: ${channelId.slice(0, 40)}`);
  return `a_${m[1]}_${m[2]}_${randomBase32(26)}`;
}

/** The channel an attachment id belongs to, or undefined for anything that is not one. */
export function channelOfAttachment(id: unknown): string | undefined {
  if (typeof id !== "string") return undefined;
  const m = ATTACHMENT_ID.exec(id);
  return m ? `c_${m[1]}_${m[2]}` : undefined;
}

export const isAttachmentId = (id: unknown): id is string => channelOfAttachment(id) !== undefined;
