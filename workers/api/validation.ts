/** zod at the HTTP edge: parse a body or query into a typed value, or a Failure that says what is wrong. */
import type { Context } from "hono";
import type { z } from "zod";
import { fail, type Failure } from "../../shared/errors.js";

export type Parsed<T> = { ok: true; value: T } | Failure;

export function parseWith<S extends z.ZodType>(schema: S, input: unknown): Parsed<z.infer<S>> {
  const r = schema.safeParse(input);
  if (r.success) return { ok: true, value: r.data };
  const issue = r.error.issues[0];
  const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
  return fail("invalid_argument", `${where}${issue?.message ?? "invalid input"}`);
}

export async function parseJsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<Parsed<z.infer<S>>> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    return fail("invalid_argument", "The request body must be valid JSON.");
  }
  return parseWith(schema, body);
}
