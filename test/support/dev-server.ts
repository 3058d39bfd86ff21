/**
 * Starts a real `wrangler dev` on 127.0.0.1 and a free port, with its own state directory, for
 * end-to-end tests, the reliability suite and benchmarks. Node-side only.
 *
 * @example
 * const server = await startDevServer();
 * // ... drive server.url with real WebSocket clients ...
 * await server.stop();
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eachLine } from "./lines.js";

const root = new URL("../../", import.meta.url).pathname;
const wrangler = join(root, "node_modules", ".bin", "wrangler");

export const QUIET_WRANGLER_ENV = {
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_HIDE_BANNER: "true",
  CI: "true",
};

export interface DevServerOptions {
  /** Reuse a state directory (restart tests); a fresh temporary one otherwise. */
  stateDir?: string;
  port?: number;
  /** Extra `--var KEY:VALUE` settings. */
  vars?: Record<string, string>;
  /** Wrangler config; the project's own by default (bench passes the limit worker's). */
  config?: string;
  /** Apply the accounts D1 migrations first (the edgechat Worker needs them). */
  migrate?: boolean;
  startTimeoutMs?: number;
  /** Print wrangler's output (debugging). */
  verbose?: boolean;
  /**
   * Runs on the state directory after the migrations are in place and before wrangler starts
   * (seeding local D1 directly, e.g. test/support/seed-accounts.ts).
   */
  beforeStart?: (stateDir: string) => void;
  /** A health request every this many ms while the server runs (see `nudge` below); 0: none. */
  nudgeEveryMs?: number;
}

export interface DevServer {
  url: string;
  wsUrl: string;
  port: number;
  stateDir: string;
  process: ChildProcess;
  /** Every non-blank line wrangler printed so far, whole (a line is added once its newline came). */
  log: string[];
  /** SIGINT and wait; removes a temporary state directory. */
  stop(): Promise<void>;
  /** SIGKILL the whole process group, like a crash; keeps the state directory. */
  kill(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export async function startDevServer(opts: DevServerOptions = {}): Promise<DevServer> {
  const ownState = opts.stateDir === undefined;
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), "edgechat-state-"));
  let port = opts.port ?? (await freePort());
  // A restart on the same port: the previous workerd may still hold it for a moment after exiting.
  if (opts.port !== undefined) await portFree(port, opts.startTimeoutMs ?? 60_000);
  const config = opts.config ?? join(root, "wrangler.toml");
  const env = { ...process.env, ...QUIET_WRANGLER_ENV };
  if (config === join(root, "wrangler.toml")) buildWebOnce(env);
  // A restart keeps its state: copying the migrated directory over it would put back an empty
  // accounts database (and a write-ahead log that does not belong to the database beside it).
  const restarting = existsSync(join(stateDir, "v3", "d1"));
  if ((opts.migrate ?? true) && !restarting) cpSync(migratedState(config, env), stateDir, { recursive: true });
  opts.beforeStart?.(stateDir);
  const vars = {
    JWT_SECRET: "edgechat-e2e-secret-0123456789abcdef0123456789",
    JURISDICTIONS: "simulated",
    // Load and reliability runs measure the platform, not the per-sender limiter (tested on its own).
    SEND_RATE_PER_SECOND: "0",
    // Short presence timings, as in vitest.config.ts, so TTL expiry and the offline grace run within a test.
    PRESENCE_OFFLINE_GRACE_MS: "200",
    PRESENCE_TTL_MS: "2000",
    // Presence damping short too: deltas held back by it arrive within a test.
    PRESENCE_MIN_INTERVAL_MS: "300",
    // Every test client connects from 127.0.0.1: per-address registration limits would trip
    // across a test file (test/api/throttle.test.ts covers them with addresses of its own).
    REGISTER_BURST: "0",
    ...opts.vars,
  };
  // Ports come from freePort(), which lets go of them before wrangler binds them: now and then
  // another process (a parallel test file's workerd) takes one in between, and wrangler exits
  // with "Address already in use". That start is tried again with fresh ports.
  let launched: Launched;
  for (let attempt = 1; ; attempt++) {
    try {
      launched = await launch(attempt === 1 || opts.port !== undefined ? port : await freePort());
      break;
    } catch (err) {
      if (!(err instanceof AddressInUse) || attempt >= 3) throw err;
      if (opts.port !== undefined) await portFree(opts.port, opts.startTimeoutMs ?? 60_000);
    }
  }
  const { child, log, exited, url } = launched;
  port = launched.port;

  async function launch(tryPort: number): Promise<Launched> {
    const args = ["dev", "--config", config, "--ip", "127.0.0.1", "--port", String(tryPort), "--persist-to", stateDir, "--inspector-port", String(await freePort()), "--show-interactive-dev-session=false"];
    for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
    const child = spawn(wrangler, args, { cwd: root, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    const log: string[] = [];
    for (const stream of [child.stdout!, child.stderr!]) {
      eachLine(stream, (line) => { if (line.trim()) log.push(line); });
      if (opts.verbose) stream.on("data", (d: string) => process.stderr.write(d));
    }
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    // After the output's last line (the exit can come before the pipes have been read to the end).
    const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));

    const url = `http://127.0.0.1:${tryPort}`;
    const deadline = Date.now() + (opts.startTimeoutMs ?? 60_000);
    for (;;) {
      if (child.exitCode !== null) {
        await Promise.race([closed, new Promise((r) => setTimeout(r, 2_000))]);
        const text = `wrangler dev exited early (${child.exitCode}):\n${log.slice(-30).join("\n")}`;
        throw log.some((l) => l.includes("Address already in use")) ? new AddressInUse(text) : new Error(text);
      }
      try {
        // Bounded: wrangler's proxy takes the connection before workerd is up and holds it while
        // workerd starts; if workerd never comes up, an unbounded fetch would outwait the deadline.
        const res = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(5_000) });
        await res.arrayBuffer();
        if (res.status < 500) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        killGroup(child, "SIGKILL");
        throw new Error(`wrangler dev did not become ready on ${url}:\n${log.slice(-30).join("\n")}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    return { child, log, exited, url, port: tryPort };
  }

  // wrangler 4.86's dev proxy now and then loses its keep-alive connection to workerd (more often
  // on a loaded machine; workers-sdk #14641) and takes it for a reload: a POST is answered 503
  // "Your worker restarted mid-request" and a GET is parked until the next request reaches the
  // proxy. A test waiting for that GET before it sends anything else would wait for ever (seen:
  // 219 s), so a health request every couple of seconds keeps the proxy taking requests.
  const nudgeEveryMs = opts.nudgeEveryMs ?? 2000;
  const nudge = nudgeEveryMs > 0 ? setInterval(() => {
    void fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(nudgeEveryMs * 5) }).then((r) => r.arrayBuffer()).catch(() => {});
  }, nudgeEveryMs) : undefined;
  nudge?.unref();
  void exited.then(() => clearInterval(nudge));

  return {
    url, wsUrl: url.replace("http", "ws"), port, stateDir, process: child, log,
    async stop() {
      clearInterval(nudge);
      killGroup(child, "SIGINT");
      const timer = setTimeout(() => killGroup(child, "SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
      // wrangler exits on SIGINT; a workerd of its group has been seen to outlive it, spinning,
      // still answering on the port (a page then never saw the server go). Stopped means gone.
      killGroup(child, "SIGKILL");
      await portFree(port, 30_000);
      if (ownState) rmSync(stateDir, { recursive: true, force: true });
    },
    async kill() {
      killGroup(child, "SIGKILL");
      await exited;
    },
  };
}

interface Launched { child: ChildProcess; log: string[]; exited: Promise<void>; url: string; port: number }

/** wrangler dev could not bind a port it was given (someone took it after freePort let go of it). */
class AddressInUse extends Error {}

/** Resolves once `port` on 127.0.0.1 can be listened on again, or throws after `timeoutMs`. */
async function portFree(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once("error", () => resolve(false));
      srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
    });
    if (free) return;
    if (Date.now() > deadline) throw new Error(`port ${port} on 127.0.0.1 is still in use after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * A state directory holding the accounts database with its migrations applied by wrangler, made
 * once per (config, migrations, wrangler version) and copied for each server: applying them
 * starts a wrangler process, 5 to 15 s on this machine, for every dev server otherwise.
 */
function migratedState(config: string, env: NodeJS.ProcessEnv): string {
  const hash = createHash("sha256").update(readFileSync(config)).update(readFileSync(join(root, "node_modules/wrangler/package.json")));
  const migrations = join(root, "migrations");
  for (const entry of readdirSync(migrations, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name)).sort()) {
    hash.update(entry).update(readFileSync(entry));
  }
  const dir = join(tmpdir(), `edgechat-migrated-${hash.digest("hex").slice(0, 16)}`);
  if (existsSync(join(dir, ".complete"))) return dir;
  const work = mkdtempSync(join(tmpdir(), "edgechat-migrating-"));
  const bindings = readFileSync(config, "utf8").includes('binding = "ACCOUNTS_EU"') ? ["ACCOUNTS", "ACCOUNTS_EU"] : ["ACCOUNTS"];
  for (const binding of bindings) {
    const m = spawnSync(wrangler, ["d1", "migrations", "apply", binding, "--local", "--persist-to", work, "--config", config], { cwd: root, env, encoding: "utf8" });
    if (m.status !== 0) throw new Error(`D1 migrations of ${binding} failed: ${m.stderr || m.stdout}`);
  }
  writeFileSync(join(work, ".complete"), "");
  try {
    renameSync(work, dir);
    return dir;
  } catch {
    if (!existsSync(join(dir, ".complete"))) return work; // a leftover in the way: use this one
    rmSync(work, { recursive: true, force: true }); // another run made it at the same time
    return dir;
  }
}

let webBuilt = false;

/** The web app's bundle as it deploys (no source map), once per test process; wrangler dev serves it. */
function buildWebOnce(env: NodeJS.ProcessEnv): void {
  if (webBuilt) return;
  const b = spawnSync(process.execPath, [join(root, "scripts", "build-web.mjs")], { cwd: root, env: { ...env, EDGECHAT_WEB_DEV: "0" }, encoding: "utf8" });
  if (b.status !== 0) throw new Error(`building the web app failed: ${b.stderr || b.stdout}`);
  webBuilt = true;
}

/** wrangler runs workerd as children; signal the whole group so none is left behind. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid) process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}
