/**
 * wrangler.toml's deploy environments (staging, production, eu) each repeat every binding and var
 * the Worker needs: wrangler does not inherit bindings, vars, queues, buckets or databases from
 * the top level, and a binding missing in one environment only shows up when that deployment
 * first touches it. Checked against the Env type `wrangler types` generates from the top level
 * (worker-configuration.d.ts), and with a real `wrangler deploy --dry-run` per environment.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { unstable_readConfig } from "wrangler";

const root = new URL("../..", import.meta.url).pathname;
const ENVIRONMENTS = ["staging", "production", "eu"] as const;
/** The parts of wrangler's resolved configuration checked here. */
interface Config {
  vars: Record<string, unknown>;
  durable_objects: { bindings: { name: string; class_name: string }[] };
  migrations: unknown[];
  r2_buckets: { binding: string; bucket_name?: string; jurisdiction?: string }[];
  d1_databases: { binding: string; database_name?: string }[];
  queues: { producers?: { binding: string; queue: string }[]; consumers?: { queue: string; dead_letter_queue?: string }[] };
  analytics_engine_datasets: { binding: string; dataset?: string }[];
  assets?: { binding?: string };
}
const read = (env?: string) => unstable_readConfig({ config: join(root, "wrangler.toml"), env }) as unknown as Config;

/** Names the Worker's Env type (generated from the top level) declares. */
function envTypeNames(): string[] {
  const types = readFileSync(join(root, "worker-configuration.d.ts"), "utf8");
  const body = /\n\tinterface Env \{\n([\s\S]*?)\n\t\}/.exec(types)?.[1];
  if (!body) throw new Error("no Cloudflare.Env in worker-configuration.d.ts");
  return [...body.matchAll(/^\t\t([A-Z0-9_]+)\??:/gm)].map((m) => m[1]!);
}

/** Secrets: in .dev.vars.example for local runs, set with `wrangler secret put` per environment. */
function secretNames(): Set<string> {
  const example = readFileSync(join(root, ".dev.vars.example"), "utf8");
  const vars = new Set(Object.keys(read().vars));
  return new Set([...example.matchAll(/^([A-Z0-9_]+)=/gm)].map((m) => m[1]!).filter((n) => !vars.has(n)));
}

function provided(config: Config): Set<string> {
  return new Set([
    ...Object.keys(config.vars),
    ...config.durable_objects.bindings.map((b) => b.name),
    ...config.r2_buckets.map((b) => b.binding),
    ...config.d1_databases.map((b) => b.binding),
    ...(config.queues.producers ?? []).map((b) => b.binding),
    ...config.analytics_engine_datasets.map((b) => b.binding),
    ...(config.assets?.binding ? [config.assets.binding] : []),
  ]);
}

describe("wrangler environments", () => {
  const needed = envTypeNames().filter((n) => !secretNames().has(n));
  const top = read();

  it("reads the Env type's names", () => {
    expect(needed.length).toBeGreaterThan(40);
    expect(needed).toEqual(expect.arrayContaining(["CHANNELS", "ACCOUNTS", "ATTACHMENTS", "PUSH_QUEUE", "ALLOWED_JURISDICTIONS"]));
  });

  it.each(ENVIRONMENTS)("%s has every binding and var the Worker's Env needs, and the same objects", (name) => {
    const config = read(name);
    const have = provided(config);
    expect(needed.filter((n) => !have.has(n)), `missing in env.${name}`).toEqual([]);
    expect(Object.keys(config.vars).sort()).toEqual(Object.keys(top.vars).sort());
    expect(config.durable_objects.bindings).toEqual(top.durable_objects.bindings);
    expect(config.migrations).toEqual(top.migrations);
    expect(config.vars.JURISDICTIONS).toBe("native");
    // Every queue it produces to is consumed, with a dead-letter queue that is consumed too.
    const consumed = new Map((config.queues.consumers ?? []).map((c) => [c.queue, c]));
    for (const p of config.queues.producers ?? []) {
      const consumer = consumed.get(p.queue);
      expect(consumer, `env.${name}: nobody consumes ${p.queue}`).toBeDefined();
      expect(consumed.has(consumer!.dead_letter_queue ?? ""), `env.${name}: ${p.queue}'s dead letters`).toBe(true);
    }
    // EU bindings point at EU buckets.
    for (const b of config.r2_buckets.filter((r) => r.binding.endsWith("_EU"))) expect(b.jurisdiction).toBe("eu");
  });

  it("keeps the eu environment's users, buckets, queues and databases in the EU, named apart from the global ones", () => {
    const eu = read("eu"), production = read("production");
    expect(eu.vars.ALLOWED_JURISDICTIONS).toBe("eu");
    expect(eu.vars.DEFAULT_JURISDICTION).toBe("eu");
    for (const b of eu.r2_buckets) expect(b.jurisdiction).toBe("eu");
    const names = (c: Config) => [
      ...c.r2_buckets.map((b) => b.bucket_name), ...c.d1_databases.map((d) => d.database_name),
      ...(c.queues.producers ?? []).map((q) => q.queue), ...c.analytics_engine_datasets.map((a) => a.dataset),
    ];
    const global = new Set(names(production));
    expect(names(eu).filter((n) => global.has(n))).toEqual([]);
    expect(production.vars.ALLOWED_JURISDICTIONS).toBe("global,eu,fedramp");
  });

  it.each(ENVIRONMENTS)("`wrangler deploy --dry-run --env %s` builds without a warning", (name) => {
    const outdir = mkdtempSync(join(tmpdir(), "edgechat-dry-run-"));
    try {
      const r = spawnSync(join(root, "node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--env", name, "--outdir", outdir], {
        cwd: root, encoding: "utf8",
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_HIDE_BANNER: "true", NO_COLOR: "1" },
      });
      expect(r.status, r.stderr).toBe(0);
      expect(`${r.stdout}${r.stderr}`).not.toMatch(/WARNING/);
      expect(r.stdout).toContain("--dry-run: exiting now.");
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});
