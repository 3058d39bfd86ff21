/**
 * Well-formed text at the edges (docs/protocol.md, "Text").
 *
 * A JavaScript string is a list of UTF-16 units and may hold a lone surrogate (`"\ud800"` in
 * JSON); UTF-8, and so every protobuf string, cannot. Such a string encodes to bytes that no strict
 * decoder accepts, and one of them in a frame makes the whole frame unreadable. So user input with
 * one is refused where it enters (frame decoder, REST parser), text stored before that check is
 * repaired with U+FFFD where it is read, and nothing the server writes is cut inside a pair.
 *
 * Used by the server and the client SDK alike.
 */

type WellFormedString = { isWellFormed?: () => boolean; toWellFormed?: () => string };

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, "g");

/** True when `s` holds no lone surrogate, i.e. it has a UTF-8 encoding. */
export function isWellFormed(s: string): boolean {
  const native = (s as unknown as WellFormedString).isWellFormed;
  return native ? native.call(s) : !LONE_SURROGATE.test(s);
}

/** `s` with every lone surrogate replaced by U+FFFD (what a lenient UTF-8 decoder would show). */
export function toWellFormed(s: string): string {
  if (isWellFormed(s)) return s;
  const native = (s as unknown as WellFormedString).toWellFormed;
  return native ? native.call(s) : s.replace(LONE_SURROGATES, "\uFFFD");
}

/** Index of the first lone surrogate in `s`, or -1. */
export function loneSurrogateAt(s: string): number {
  return isWellFormed(s) ? -1 : s.search(LONE_SURROGATE);
}

/** Where in a nested value a string was found: `send.content.text.text`, `members.2`. */
export interface TextPath {
  path: string;
  value: string;
}

/**
 * Every string in `value` (object keys too; bytes skipped) for which `bad` holds, with its
 * path. Stops after `max` finds.
 */
export function findStrings(value: unknown, bad: (s: string) => boolean, prefix = "", max = 20): TextPath[] {
  const out: TextPath[] = [];
  const walk = (v: unknown, path: string): void => {
    if (out.length >= max) return;
    if (typeof v === "string") {
      if (bad(v)) out.push({ path, value: v });
      return;
    }
    if (typeof v !== "object" || v === null || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return;
    if (Array.isArray(v)) {
      v.forEach((item, i) => walk(item, path ? `${path}.${i}` : String(i)));
      return;
    }
    for (const key of Object.keys(v)) {
      const at = path ? `${path}.${toWellFormed(key)}` : toWellFormed(key);
      if (bad(key) && out.length < max) out.push({ path: `${at} (a key)`, value: key });
      walk((v as Record<string, unknown>)[key], at);
    }
  };
  walk(value, prefix);
  return out;
}

/** Paths of the strings in `value` that hold a lone surrogate. */
export function illFormedPaths(value: unknown, prefix = ""): TextPath[] {
  return findStrings(value, (s) => !isWellFormed(s), prefix);
}

/**
 * `value` with every string made well-formed. Returns `value` itself when nothing needed
 * repair, so the common case allocates nothing; otherwise a copy of the objects on the way to
 * each repaired string (plain objects and arrays only: class instances are not copied).
 */
export function wellFormedDeep<T>(value: T): T {
  if (typeof value === "string") return toWellFormed(value) as T;
  if (typeof value !== "object" || value === null || ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item, i) => {
      const fixed = wellFormedDeep(item);
      if (fixed !== item) (copy ??= [...value])[i] = fixed;
    });
    return (copy ?? value) as T;
  }
  let copy: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(value)) {
    const fixed = wellFormedDeep(item);
    if (fixed !== item) (copy ??= { ...(value as Record<string, unknown>) })[key] = fixed;
  }
  return (copy ?? value) as T;
}

/**
 * `s` cut to at most `max` UTF-16 units without splitting a surrogate pair: for ids and text
 * echoed in errors, which must stay encodable whatever the client sent.
 */
export function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  const cut = s.charCodeAt(max - 1);
  return s.slice(0, cut >= 0xd800 && cut <= 0xdbff ? max - 1 : max);
}

/** Describes the first lone surrogate of `s` for an error message: "a lone surrogate U+D800 at index 3". */
export function describeLoneSurrogate(s: string): string {
  const at = loneSurrogateAt(s);
  if (at < 0) return "bytes that are not UTF-8";
  return `a lone surrogate U+${s.charCodeAt(at).toString(16).toUpperCase()} at index ${at}`;
}

// ---- names -----------------------------------------------------------------------------------

/** Bidi embeddings, overrides and isolates, the bidi marks, and invisible format characters. */
const INVISIBLE = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C\u200B\u2060-\u2064\uFEFF\u00AD]/g;
/** Control characters that read as a break: shown as one space. */
const BREAKS = /[\t\n\v\f\r\u0085\u2028\u2029]/g;
/** Every other control character (C0, DEL, C1). */
const CONTROLS = /\p{Cc}/gu;
/**
 * ZWNJ and ZWJ are spelling in some scripts (Persian, Urdu and the Indic scripts write words with
 * them) and glue emoji sequences (👩‍💻); anywhere else they are invisible padding.
 */
const JOINER_SCRIPTS = "\\p{Script_Extensions=Arabic}\\p{Script_Extensions=Syriac}\\p{Script_Extensions=Nko}" +
  "\\p{Script_Extensions=Devanagari}\\p{Script_Extensions=Bengali}\\p{Script_Extensions=Gurmukhi}\\p{Script_Extensions=Gujarati}" +
  "\\p{Script_Extensions=Oriya}\\p{Script_Extensions=Tamil}\\p{Script_Extensions=Telugu}\\p{Script_Extensions=Kannada}" +
  "\\p{Script_Extensions=Malayalam}\\p{Script_Extensions=Sinhala}\\p{Script_Extensions=Mongolian}";
const STRAY_JOINER = new RegExp(
  `(?<![${JOINER_SCRIPTS}])\\u200C|\\u200C(?![\\p{L}\\p{M}])` +
  `|(?<![${JOINER_SCRIPTS}]|\\p{Extended_Pictographic}[\\u{FE0F}\\u{1F3FB}-\\u{1F3FF}]?)\\u200D` +
  `|(?<=[${JOINER_SCRIPTS}])\\u200D(?![\\p{L}\\p{M}])` +
  `|(?<=\\p{Extended_Pictographic}[\\u{FE0F}\\u{1F3FB}-\\u{1F3FF}]?)\\u200D(?!\\p{Extended_Pictographic})`,
  "gu",
);

/**
 * A display name or channel name as others will see it: no bidi controls (which let a name
 * reorder the text around it, "‮moc.evil" showing as "live.com"), no zero-width or invisible
 * characters (which make two different names look alike), no control characters; line breaks
 * and tabs become spaces, runs of spaces one, and the ends are trimmed. ZWNJ/ZWJ stay where they
 * are spelling or join an emoji sequence. Expects well-formed text (check it first).
 *
 * @example
 * cleanName("\u202Eadmin\u200B ") // "admin"
 */
export function cleanName(s: string): string {
  return s
    .replace(BREAKS, " ")
    .replace(INVISIBLE, "")
    .replace(CONTROLS, "")
    .replace(STRAY_JOINER, "")
    .replace(/\s+/gu, " ")
    .trim();
}
