/**
 * Which binding holds data of a jurisdiction: the second half of the locality policy
 * (shared/locality.ts decides the jurisdiction, this module the bucket, queue or database that
 * serves it). docs/decisions/021-jurisdiction-bindings.md.
 *
 * A jurisdiction-specific binding is the default's name with the jurisdiction's suffix
 * (ATTACHMENTS_EU, PUSH_QUEUE_EU, ACCOUNTS_EU; _FEDRAMP likewise). When one is not configured the
 * default binding serves that jurisdiction too, and the operator's docs say that data then stays
 * where the default lives. Locally (wrangler dev, tests) the _EU bindings are separate local
 * buckets, queues and databases, so the same decisions run and are tested; in production they
 * are created in the jurisdiction (R2 `--jurisdiction eu`, D1 `--jurisdiction eu`, Queues with a
 * jurisdiction at creation).
 */
import { isJurisdiction, type Jurisdiction } from "./ids.js";

type Scoped<T> = Partial<Record<string, T | unknown>>;

function pick<T>(env: Scoped<T>, base: string, jurisdiction: Jurisdiction): T {
  if (jurisdiction !== "") {
    const specific = env[`${base}_${jurisdiction.toUpperCase()}`];
    if (specific) return specific as T;
  }
  return env[base] as T;
}

/** Whether `jurisdiction` has a binding of its own for `base` (not the default's fallback). */
export function hasOwnBinding(env: object, base: "ATTACHMENTS" | "PUSH_QUEUE" | "ACCOUNTS", jurisdiction: Jurisdiction): boolean {
  return jurisdiction !== "" && Boolean((env as Scoped<unknown>)[`${base}_${jurisdiction.toUpperCase()}`]);
}

/** The R2 bucket for blobs of a channel stored in `jurisdiction`. */
export function bucketFor(env: Env, jurisdiction: Jurisdiction): R2Bucket {
  return pick<R2Bucket>(env as unknown as Scoped<R2Bucket>, "ATTACHMENTS", jurisdiction);
}

/** The bucket holding an attachment: its id names its channel, whose id names the jurisdiction. */
export function bucketOfAttachment(env: Env, attachmentId: string): R2Bucket {
  return bucketFor(env, jurisdictionOfAttachment(attachmentId));
}

/** a_<j>_…: the jurisdiction an attachment id names ("" for anything else). */
export function jurisdictionOfAttachment(attachmentId: string): Jurisdiction {
  const tag = /^a_(g|eu|fr)_/.exec(attachmentId)?.[1];
  return tag === "eu" ? "eu" : tag === "fr" ? "fedramp" : "";
}

/** The push queue for jobs of a user whose data stays in `jurisdiction`. */
export function queueFor<T>(env: Env, jurisdiction: Jurisdiction): Queue<T> {
  return pick<Queue<T>>(env as unknown as Scoped<Queue<T>>, "PUSH_QUEUE", jurisdiction);
}

/**
 * The global account directory: only what routing a login or a mention needs (username -> user
 * id and home jurisdiction). For a jurisdiction with its own account store, the directory's row
 * carries no display name and no password hash.
 */
export function directory(env: Env): D1Database {
  return env.ACCOUNTS;
}

/** Where the accounts (display name, password hash) of users pinned to `jurisdiction` live. */
export function accountsFor(env: Env, jurisdiction: Jurisdiction): D1Database {
  return pick<D1Database>(env as unknown as Scoped<D1Database>, "ACCOUNTS", jurisdiction);
}

const NAMES: Record<string, Jurisdiction> = { global: "", eu: "eu", fedramp: "fedramp" };

/** The home jurisdictions this deployment lets users register in (ALLOWED_JURISDICTIONS; all by default). */
export function allowedJurisdictions(env: { ALLOWED_JURISDICTIONS?: string }): Jurisdiction[] {
  const raw = String(env.ALLOWED_JURISDICTIONS ?? "").split(",").map((s) => s.trim().toLowerCase()).filter((s) => s !== "");
  const list = raw.map((s) => NAMES[s]).filter(isJurisdiction);
  return list.length > 0 ? [...new Set(list)] : ["", "eu", "fedramp"];
}

/** The home jurisdiction of a registration that names none (DEFAULT_JURISDICTION; global by default). */
export function defaultJurisdiction(env: { DEFAULT_JURISDICTION?: string; ALLOWED_JURISDICTIONS?: string }): Jurisdiction {
  const named = NAMES[String(env.DEFAULT_JURISDICTION ?? "").trim().toLowerCase()];
  const allowed = allowedJurisdictions(env);
  return named !== undefined && allowed.includes(named) ? named : allowed[0]!;
}
