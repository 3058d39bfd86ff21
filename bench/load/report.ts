/**
 * Console lines while the bench runs, and the markdown tables it ends with (pasted into
 * BENCHMARKS.md). "edgechat ÷ limit" is edgechat's figure divided by the limit's; "gap" says how
 * many times better the limit is on that figure, whichever direction "better" points.
 */
import type { Extra, ScenarioId, ScenarioResult } from "../scenarios/scenario.js";
import type { Summary } from "./percentiles.js";

export interface RunMeta {
  command: string;
  date: string;
  mode: "quick" | "full";
  revision: { commit: string; server_code_modified: boolean };
  machine: { nproc: number; ram_gib: number; cpu: string; node: string; wrangler: string; os: string };
  state_medium: string;
  /** Vars the bench gave the edgechat server (the per-sender rate limit is off unless overridden). */
  server_vars: Record<string, string> | string;
  /** Setup requests retried after a 503 from wrangler's proxy. */
  setup_retries: number;
  /** Runs repeated because wrangler reloaded the Worker mid-run (a watched file changed). */
  reruns_after_reload: number;
  /** 1-minute load average when the run started and ended: other work on the machine adds noise. */
  load_avg: { start: number; end: number };
  pattern: { window: number; rate_per_sender: number };
  /** Runs per scenario and target; the best is reported. */
  repeat: number;
  edgechat_url: string;
  limit_url: string | undefined;
  register_users: number;
  register_ms: number;
}

const num = (v: number, digits = 0) => v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

function ms(v: number): string {
  return v >= 100 ? num(v) : v >= 10 ? num(v, 1) : num(v, 2);
}

function lat(s: Summary | undefined): string {
  return s ? `${ms(s.p50)} / ${ms(s.p90)} / ${ms(s.p99)} / ${ms(s.max)}` : "–";
}

function rate(v: number | undefined): string {
  return v === undefined ? "–" : num(v);
}

function headlineValue(r: ScenarioResult | undefined): string {
  if (!r) return "–";
  if (r.error) return "error";
  if (!r.headline) return "–";
  const h = r.headline;
  const v = h.unit === "ms" ? `${ms(h.value)} ms` : h.unit === "KiB" ? `${num(h.value)} KiB` : num(h.value);
  return r.timedOut ? `${v} (timed out)` : v;
}

function checks(r: ScenarioResult): string {
  const t = r.traffic;
  if (!t) return "–";
  return `${t.lost} / ${t.duplicated} / ${t.outOfOrder}${t.errors ? ` (${t.errors} errors)` : ""}`;
}

/** A result is clean when it finished in time with nothing lost, doubled, reordered or refused. */
export function clean(r: ScenarioResult): boolean {
  const t = r.traffic;
  return !r.error && !r.timedOut && (!t || (t.lost === 0 && t.duplicated === 0 && t.outOfOrder === 0 && t.errors === 0));
}

export function consoleLine(r: ScenarioResult): string {
  const head = `(${r.scenario}) ${r.target.padEnd(8)}`;
  if (r.error) return `${head} ERROR ${r.error}`;
  const t = r.traffic;
  const parts = [`${r.headline?.label ?? ""}: ${headlineValue(r)}`];
  if (t) {
    parts.push(`ack ${lat(t.ack)} ms`);
    if (t.deliver) parts.push(`deliver ${lat(t.deliver)} ms`);
    parts.push(`${rate(t.msgsPerSec)} msg/s`, `${rate(t.deliveriesPerSec)} deliveries/s`, `lost/dup/ooo ${checks(r)}`);
  }
  const extra = Object.entries(r.extra).filter(([k]) => !k.endsWith("_pid")).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`);
  if (extra.length) parts.push(extra.join(" "));
  if (r.cpu) parts.push(cpuNote(r));
  else parts.push(`${num(r.durationMs / 1000, 1)} s`);
  if (!clean(r)) parts.push("<-- CHECK FAILED");
  return `${head} ${parts.join(" | ")}`;
}

function scenarioLabel(r: ScenarioResult): string {
  const p = r.params;
  const detail: Record<ScenarioId, string> = {
    a: `${num(p.messages ?? 0)} msgs, window ${p.window}`,
    b: `${p.members} members, ${p.senders} senders × ${num(p.messages_per_sender ?? 0)}, window ${p.window}`,
    c: `${p.channels} channels × ${num(p.messages_per_channel ?? 0)} msgs, window ${p.window}`,
    d: `${num(p.members ?? 0)} members online, ${p.posts} posts`,
    e: `${p.channels} channels × ${num(p.messages_per_channel ?? 0)} msgs offline`,
    f: `${num(p.devices ?? 0)} devices, ${p.devices_per_user} per user`,
    g: `${num(p.connected ?? 0)} connected, ${p.posts} posts at each of 1,000 / 10,000 / 100,000 subscribers`,
    h: `${num(p.members ?? 0)} members, ${p.online_few} then all online, ${p.posts} posts each`,
  };
  return `(${r.scenario}) ${r.title}: ${detail[r.scenario]}`;
}

function ratio(e: ScenarioResult | undefined, l: ScenarioResult | undefined): { ratio: string; gap: string } {
  const he = e?.headline;
  const hl = l?.headline;
  if (!he || !hl || e?.error || l?.error || hl.value === 0 || he.value === 0) return { ratio: "–", gap: "–" };
  const r = he.value / hl.value;
  const gap = he.better === "higher" ? 1 / r : r;
  return { ratio: `${num(r, 2)}×`, gap: `${num(gap, 1)}×` };
}

function repeatsNote(r: ScenarioResult): string {
  if (!r.repeats || !r.headline) return "";
  const unit = r.headline.unit === "ms" ? " ms" : r.headline.unit === "KiB" ? " KiB" : "";
  return `runs: ${r.repeats.map((v) => (Number.isNaN(v) ? "failed" : r.headline!.unit === "ms" ? ms(v) : num(v))).join(", ")}${unit}`;
}

function cpuNote(r: ScenarioResult): string {
  const c = r.cpu;
  return c ? `CPU s: worker ${num(c.worker, 1)}, proxy ${num(c.proxy, 1)}, bench ${num(c.bench, 1)} in ${num(r.durationMs / 1000, 1)} s` : "";
}

function extraNotes(r: ScenarioResult): string {
  const x: Extra = r.extra;
  switch (r.scenario) {
    case "d": return `all delivered per post: ${Array.isArray(x.all_delivered_ms) ? x.all_delivered_ms.join(", ") : "–"} ms; connect ${x.connect_ms} ms`;
    case "h": return `${r.params.online_few} online, per post: ${Array.isArray(x.few_online_ms) ? x.few_online_ms.join(", ") : "–"} ms; all online, per post: ${Array.isArray(x.all_online_ms) ? x.all_online_ms.join(", ") : "–"} ms (median ${x.all_online_median_ms} ms)`;
    case "g": return [1_000, 10_000, 100_000].map((n) => `${num(n)} subscribers: ${Array.isArray(x[`at_${n}_ms`]) ? (x[`at_${n}_ms`] as number[]).join(", ") : "–"} ms (median ${x[`at_${n}_median_ms`]}), CPU ${Array.isArray(x[`at_${n}_cpu_ms`]) ? (x[`at_${n}_cpu_ms`] as number[]).join(", ") : "–"} ms (median ${x[`at_${n}_median_cpu_ms`]}${x[`at_${n}_median_net_cpu_ms`] !== undefined ? `; net of the idle ${x[`at_${n}_idle_cpu_ms_per_s`]} ms/s: ${x[`at_${n}_median_net_cpu_ms`]}` : ""})${x[`bulk_to_${n}_ms`] !== undefined ? `, bulk ${x[`bulk_to_${n}_ms`]} ms` : ""}`).join("; ");
    case "e": return `server quiet ${x.quiet_after_last_ack_ms} ms after the last ack; then HELLO ${x.hello_ms} ms, RESUMED ${x.resumed_ms} ms, ${x.pull_history_calls} PULL_HISTORY`;
    case "f": return `proxy ${x.proxy_kib_per_conn} + worker ${x.worker_kib_per_conn} KiB/conn; loading the ${r.target === "limit" ? "rooms" : "UserObjects"} first: ${x.worker_kib_per_object_loaded} KiB each; RSS proxy ${x.proxy_rss_mib_before}→${x.proxy_rss_mib_after} MiB, worker ${x.worker_rss_mib_before}→${x.worker_rss_mib_after} MiB (after close: ${x.proxy_rss_mib_closed} / ${x.worker_rss_mib_closed}); ${num(Number(x.connects_per_sec))} connects/s`;
    default: return "";
  }
}

/** The tables for BENCHMARKS.md: headline figures with the ratio, then every measurement. */
export function markdown(meta: RunMeta, results: readonly ScenarioResult[]): string {
  const ids = [...new Set(results.map((r) => r.scenario))];
  const find = (id: ScenarioId, target: string) => results.find((r) => r.scenario === id && r.target === target);
  const m = meta.machine;
  const out: string[] = [
    `**${meta.mode} run** — \`${meta.command}\` — ${meta.date} — commit ${meta.revision.commit}${meta.revision.server_code_modified ? " with uncommitted server changes" : ""}`,
    "",
    `Machine: ${m.nproc} cores (${m.cpu}), ${m.ram_gib} GiB RAM, ${m.os}, Node ${m.node}, wrangler ${m.wrangler}. ` +
      `State of both servers: ${meta.state_medium}. ` +
      `${meta.repeat > 1 ? `Each scenario ran ${meta.repeat} times per server, alternating servers; the best run is shown (all runs' figures under "runs"). ` : ""}` +
      `Sender pattern: window ${meta.pattern.window}, ` +
      `${meta.pattern.rate_per_sender > 0 ? `${meta.pattern.rate_per_sender} msg/s per sender` : "unpaced"}. ` +
      `Setup (not timed in the scenarios): ${num(meta.register_users)} users registered in ${num(meta.register_ms / 1000, 1)} s. ` +
      `Load average (1 min) ${num(meta.load_avg.start, 2)} at the start, ${num(meta.load_avg.end, 2)} at the end. ` +
      `edgechat vars: ${typeof meta.server_vars === "string" ? meta.server_vars : Object.entries(meta.server_vars).map(([k, v]) => `${k}=${v}`).join(", ")}` +
      `${meta.setup_retries ? `; ${meta.setup_retries} setup requests retried after a 503` : ""}` +
      `${meta.reruns_after_reload ? `; ${meta.reruns_after_reload} runs repeated after wrangler reloaded the Worker` : ""}.`,
    "",
    "| Scenario | Figure | edgechat | limit | edgechat ÷ limit | gap |",
    "| --- | --- | ---: | ---: | ---: | ---: |",
  ];
  for (const id of ids) {
    const e = find(id, "edgechat");
    const l = find(id, "limit");
    const first = e ?? l!;
    const { ratio: rr, gap } = ratio(e, l);
    out.push(`| ${scenarioLabel(first)} | ${first.headline?.label ?? "–"} | ${headlineValue(e)} | ${headlineValue(l)} | ${rr} | ${gap} |`);
  }
  out.push(
    "",
    "| Scenario | Server | send→ack ms p50 / p90 / p99 / max | send→deliver ms p50 / p90 / p99 / max | msg/s | deliveries/s | lost / dup / out-of-order | notes |",
    "| --- | --- | --- | --- | ---: | ---: | --- | --- |",
  );
  for (const id of ids) {
    for (const r of [find(id, "edgechat"), find(id, "limit")]) {
      if (!r) continue;
      const t = r.traffic;
      const notes = r.error ? `error: ${r.error}${r.extra.connects ? `; connects: ${r.extra.connects}` : ""}` : [repeatsNote(r), extraNotes(r), cpuNote(r), r.extra.connects ? `connects: ${r.extra.connects}` : "", String(r.extra.note ?? ""), r.timedOut ? "TIMED OUT" : ""].filter(Boolean).join("; ");
      out.push(`| (${id}) | ${r.target} | ${lat(t?.ack)} | ${lat(t?.deliver)} | ${rate(t?.msgsPerSec)} | ${rate(t?.deliveriesPerSec)} | ${checks(r)} | ${notes} |`);
    }
  }
  return out.join("\n");
}
