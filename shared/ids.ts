/**
 * Ids for users and channels. Each id encodes its home jurisdiction, so any Worker can route a
 * request to the right Durable Object partition without a lookup (DESIGN.md, data locality).
 *
 *   u_<j>_<26 base32>   user       c_<j>_<26 base32>   channel (DMs: a hash of both members)
 *
 * where <j> is "g" (no jurisdiction), "eu" or "fr" (fedramp). Ids carry no personal data: object
 * names are logged outside the jurisdiction.
 */
export type Jurisdiction = "" | "eu" | "fedramp";
export type IdKind = "u" | "c";

/** Every jurisdiction an id can name ("" is global). */
export const JURISDICTIONS: readonly Jurisdiction[] = ["", "eu", "fedramp"];

const JURISDICTION_TAGS: Record<Jurisdiction, string> = { "": "g", eu: "eu", fedramp: "fr" };
const TAG_TO_JURISDICTION: Record<string, Jurisdiction> = { g: "", eu: "eu", fr: "fedramp" };
const ID_PATTERN = /^([uc])_(g|eu|fr)_([0-9a-z]{26})$/;
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case

function base32(bytes: Uint8Array, length: number): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < length) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  return out;
}

/** A new random id (130 bits of entropy). */
export function newId(kind: IdKind, jurisdiction: Jurisdiction = ""): string {
  return `${kind}_${JURISDICTION_TAGS[jurisdiction]}_${base32(crypto.getRandomValues(new Uint8Array(17)), 26)}`;
}

/**
 * The one DM channel between two users: the same id whoever creates it, so a second "new DM"
 * finds the existing conversation instead of splitting it in two.
 */
export async function dmChannelId(a: string, b: string, jurisdiction: Jurisdiction): Promise<string> {
  const [x, y] = a < b ? [a, b] : [b, a];
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`edgechat-dm:${x}:${y}`));
  return `c_${JURISDICTION_TAGS[jurisdiction]}_${base32(new Uint8Array(digest), 26)}`;
}

export interface ParsedId { kind: IdKind; jurisdiction: Jurisdiction }

export function parseId(id: unknown): ParsedId | undefined {
  if (typeof id !== "string") return undefined;
  const m = ID_PATTERN.exec(id);
  if (!m) return undefined;
  return { kind: m[1] as IdKind, jurisdiction: TAG_TO_JURISDICTION[m[2]!]! };
}

export const isUserId = (id: unknown): id is string => parseId(id)?.kind === "u";
export const isChannelId = (id: unknown): id is string => parseId(id)?.kind === "c";

export function isJurisdiction(j: unknown): j is Jurisdiction {
  return j === "" || j === "eu" || j === "fedramp";
}
