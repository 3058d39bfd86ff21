/**
 * Parsing at the HTTP edge (zod/mini): a body or query into a typed value, or a Failure that says what is
 * wrong. Text is checked here once for every route: a body must be UTF-8 and hold no lone
 * surrogate (JSON "\ud800"), and percent-encoded paths and queries must decode to UTF-8;
 * otherwise `invalid_text` (docs/protocol.md, "Text").
 */
import type { Context } from "hono";
import * as z from "zod/mini";
import en from "zod/v4/locales/en.js";
import { cleanName, describeLoneSurrogate, illFormedPaths } from "../../protocol/text.js";
import { fail, type Failure } from "../../shared/errors.js";

// zod/mini (a tenth of classic zod's size in the Worker) ships without messages; the English
// ones are classic zod's own, so bad requests read exactly as before.
z.config(en());

export type Parsed<T> = { ok: true; value: T } | Failure;

export function parseWith<S extends z.ZodMiniType>(schema: S, input: unknown): Parsed<z.infer<S>> {
  const r = schema.safeParse(input);
  if (r.success) return { ok: true, value: r.data };
  const issue = r.error.issues[0];
  const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
  return fail("invalid_argument", `${where}${issue?.message ?? "invalid input"}`);
}

/**
 * A display name or channel name, as others will see it: cleaned of bidi controls, invisible and
 * control characters (protocol/text.ts cleanName), then 1 to `max` characters.
 */
export function nameText(max: number) {
  return z.string().check(z.overwrite(cleanName), z.minLength(1, "at least one visible character"), z.maxLength(max));
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

export async function parseJsonBody<S extends z.ZodMiniType>(c: Context, schema: S): Promise<Parsed<z.infer<S>>> {
  let text: string;
  try {
    text = strictUtf8.decode(await c.req.arrayBuffer());
  } catch {
    return fail("invalid_text", "Text must be well-formed Unicode: the request body is not UTF-8.");
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return fail("invalid_argument", "The request body must be valid JSON.");
  }
  const bad = illFormedPaths(body);
  if (bad.length > 0) return fail("invalid_text", `Text must be well-formed Unicode: ${bad[0]!.path || "the body"} holds ${describeLoneSurrogate(bad[0]!.value)}.`);
  return parseWith(schema, body);
}

const ESCAPES = /(?:%[0-9A-Fa-f]{2})+/g;

/** True when every run of %XX escapes in `s` decodes to UTF-8 (malformed escapes are left to the route). */
function escapesAreUtf8(s: string): boolean {
  for (const run of s.match(ESCAPES) ?? []) {
    const bytes = new Uint8Array(run.length / 3);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(run.slice(i * 3 + 1, i * 3 + 3), 16);
    try {
      strictUtf8.decode(bytes);
    } catch {
      return false;
    }
  }
  return true;
}

/** `invalid_text` when the URL's path or query percent-encodes bytes that are not UTF-8. */
export function checkUrlText(url: string): Failure | undefined {
  const u = new URL(url);
  if (!escapesAreUtf8(u.pathname)) {
    return fail("invalid_text", "Text must be well-formed Unicode: a path segment is not percent-encoded UTF-8.");
  }
  for (const pair of u.search.slice(1).split("&")) {
    if (escapesAreUtf8(pair)) continue;
    const name = pair.split("=")[0] ?? "";
    const shown = escapesAreUtf8(name) ? decodeURIComponent(name.replace(/\+/g, " ")).slice(0, 40) : "(not UTF-8)";
    return fail("invalid_text", `Text must be well-formed Unicode: the query parameter "${shown}" is not percent-encoded UTF-8.`);
  }
  return undefined;
}
