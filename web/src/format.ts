/** Pure formatting helpers: names, times, initials, avatar colours. No DOM. */

/** "Bob", "Bob and Carol", "Bob, Carol and Dave", "Bob, Carol and 3 others". */
export function joinNames(names: string[]): string {
  if (names.length === 0) return "";
  if (names.length === 1) return names[0]!;
  if (names.length <= 3) return `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
  return `${names.slice(0, 2).join(", ")} and ${names.length - 2} others`;
}

/** The line under the conversation while others type. */
export function typingText(names: string[]): string {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length <= 3) return `${joinNames(names)} are typing…`;
  return "Several people are typing…";
}

/** Up to two letters: "Ada Lovelace" → "AL", "bob" → "B". */
export function initials(name: string): string {
  const words = name.trim().split(/[\s._-]+/).filter(Boolean);
  if (words.length === 0) return "?";
  const letters = words.length === 1 ? [words[0]![0]] : [words[0]![0], words.at(-1)![0]];
  return letters.join("").toUpperCase();
}

/**
 * A stable hue per id, so a person keeps their avatar colour everywhere. Saturation and
 * lightness are fixed where white initials keep a 4.5:1 contrast.
 */
export function avatarHue(id: string): number {
  let hash = 2166136261;
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 16777619);
  return (hash >>> 0) % 360;
}

/** ms since the epoch encoded in an HLC's first 12 hex digits; 0 if there is none. */
export function hlcMillis(hlc: string): number {
  if (!/^[0-9a-f]{16}$/.test(hlc)) return 0;
  return parseInt(hlc.slice(0, 12), 16);
}

const DAY = 86_400_000;

function startOfDay(ts: number): number {
  const d = new Date(ts);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** "14:05" or "2:05 PM" (the locale's short time). */
export function clockTime(ts: number, locale?: string): string {
  return new Date(ts).toLocaleTimeString(locale, { hour: "numeric", minute: "2-digit" });
}

/** The channel list's timestamp: time today, "Yesterday", weekday this week, else a short date. */
export function listTime(ts: number, now: number, locale?: string): string {
  if (ts <= 0) return "";
  const days = Math.round((startOfDay(now) - startOfDay(ts)) / DAY);
  if (days <= 0) return clockTime(ts, locale);
  if (days === 1) return "Yesterday";
  if (days < 7) return new Date(ts).toLocaleDateString(locale, { weekday: "short" });
  return new Date(ts).toLocaleDateString(locale, { day: "numeric", month: "short" });
}

/** Day separators in the conversation: "Today", "Yesterday", "Monday 3 March". */
export function dayLabel(ts: number, now: number, locale?: string): string {
  const days = Math.round((startOfDay(now) - startOfDay(ts)) / DAY);
  if (days <= 0) return "Today";
  if (days === 1) return "Yesterday";
  const sameYear = new Date(ts).getFullYear() === new Date(now).getFullYear();
  return new Date(ts).toLocaleDateString(locale, { weekday: "long", day: "numeric", month: "long", ...(sameYear ? {} : { year: "numeric" }) });
}

/** Local calendar day, for grouping messages under separators. */
export function dayKey(ts: number): string {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

/** "last seen just now", "last seen 5 min ago", "last seen today at 14:05", "last seen 3 Mar". */
export function lastSeenText(lastSeen: number, now: number, locale?: string): string {
  if (lastSeen <= 0) return "";
  const ago = now - lastSeen;
  if (ago < 60_000) return "last seen just now";
  if (ago < 3_600_000) return `last seen ${Math.floor(ago / 60_000)} min ago`;
  const days = Math.round((startOfDay(now) - startOfDay(lastSeen)) / DAY);
  if (days <= 0) return `last seen today at ${clockTime(lastSeen, locale)}`;
  if (days === 1) return `last seen yesterday at ${clockTime(lastSeen, locale)}`;
  return `last seen ${new Date(lastSeen).toLocaleDateString(locale, { day: "numeric", month: "short" })}`;
}

/** A one-line preview of a message body for the channel list. */
export function previewText(text: string, max = 80): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** Splits "bob, carol  dave" into ["bob", "carol", "dave"], without duplicates or "@". */
export function parseUsernames(input: string): string[] {
  const out: string[] = [];
  for (const raw of input.split(/[\s,;]+/)) {
    const name = raw.replace(/^@/, "").trim();
    if (name !== "" && !out.some((n) => n.toLowerCase() === name.toLowerCase())) out.push(name);
  }
  return out;
}

/** "512 B", "1.5 KB", "147 KB", "100 MB". */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** Bytes as base64, for data: URLs (thumbnails). */
export function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
