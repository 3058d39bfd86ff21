// `npm start`: the whole platform locally under wrangler dev, with local Durable Objects, SQLite,
// D1 and assets in .wrangler/state. Prepares what a fresh clone lacks, bundles the web app and
// rebuilds it whenever web/src changes, runs wrangler dev, and says in one line where the app is.
// Start-up chatter (the migration tables and prompt, the bindings table, wrangler's own ready line)
// stays out of the way; what follows (requests, the Worker's logs, warnings, errors) comes through.
//   PORT, HOST               where to listen (8787, 127.0.0.1)
//   EDGECHAT_STATE_DIR       keep local state elsewhere (tests, benchmarks)
//   EDGECHAT_WEB_DEV=0       bundle the web app as it deploys (no source map)
//   npm start -- <flags>     extra wrangler dev flags, e.g. --show-interactive-dev-session for its hotkeys
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { context } from "esbuild";
import { webBuildOptions } from "./build-web.mjs";

const root = new URL("..", import.meta.url).pathname;
const wrangler = `${root}node_modules/.bin/wrangler`;
const port = process.env.PORT ?? "8787";
const host = process.env.HOST ?? "127.0.0.1";
const persist = process.env.EDGECHAT_STATE_DIR;
const persistArgs = persist ? ["--persist-to", persist] : [];
const quiet = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_HIDE_BANNER: "true" };

if (!existsSync(`${root}.dev.vars`)) {
  copyFileSync(`${root}.dev.vars.example`, `${root}.dev.vars`);
  console.log("edgechat: created .dev.vars from .dev.vars.example (local development secrets)");
}

// The account databases' migrations (the directory, and EU accounts: docs/decisions/021). wrangler
// asks before applying and, not being interactive here (CI=true), answers itself; its output is
// shown only when applying fails.
for (const [binding, what] of [["ACCOUNTS", "account database"], ["ACCOUNTS_EU", "EU account database"]]) {
  const migrate = spawnSync(wrangler, ["d1", "migrations", "apply", binding, "--local", ...persistArgs], { cwd: root, env: { ...quiet, CI: "true" }, encoding: "utf8" });
  if (migrate.status !== 0) {
    process.stderr.write(`${migrate.stdout ?? ""}${migrate.stderr ?? ""}`);
    console.error(`edgechat: applying the migrations of ${binding} failed`);
    process.exit(migrate.status ?? 1);
  }
  // wrangler prints its table of migrations again after each one it applies: each name once.
  const applied = [...new Set([...(migrate.stdout ?? "").matchAll(/│\s*(\S+\.sql)\s*│\s*✅/g)].map((m) => m[1]))];
  if (applied.length > 0) console.log(`edgechat: applied ${applied.join(", ")} to the local ${what}`);
}

// The web app: built once here, then rebuilt by esbuild on every change to web/src. wrangler dev
// watches web/public and reloads its local server once per rebuild; clients reconnect and RESUME
// (docs/decisions/014-web-bundle-outside-wrangler.md).
const web = await context({
  ...webBuildOptions({ dev: (process.env.EDGECHAT_WEB_DEV ?? "1") === "1" }),
  plugins: [{
    name: "edgechat-dev",
    setup(build) {
      let builds = 0;
      build.onEnd((result) => {
        if (builds++ === 0) webReady();
        else if (result.errors.length === 0) console.log("edgechat: web app rebuilt");
      });
    },
  }],
});
let webReady;
const firstWebBuild = new Promise((resolve) => { webReady = resolve; });
await web.watch();
await firstWebBuild;

const dev = spawn(wrangler, ["dev", "--ip", host, "--port", port, "--show-interactive-dev-session=false", ...persistArgs, ...process.argv.slice(2)], {
  cwd: root,
  env: { ...quiet, ...(process.stdout.isTTY ? { FORCE_COLOR: "1" } : {}) },
  stdio: ["inherit", "pipe", "pipe"],
});

// wrangler's start-up lines that say nothing a developer needs; its "Ready on" becomes our line.
const chatter = [
  /^Using secrets defined in /,
  /^Your Worker has access to the following bindings:/,
  /^Binding\s+Resource\s+Mode\s*$/,
  /^env\.\w+\s.*\s(local|remote)\s*$/,
  /^⎔ Starting local server/,
  /Parsed \d+ valid header rules?\.?\s*$/,
  /^\s*$/,
];
const shown = host === "127.0.0.1" || host === "0.0.0.0" ? "localhost" : host;
function relay(stream, out) {
  createInterface({ input: stream }).on("line", (line) => {
    const plain = line.replace(/\x1b\[[0-9;]*m/g, "");
    if (/Ready on https?:\/\//.test(plain)) {
      console.log(`edgechat is running at http://${shown}:${port} — web app at /, API at /v1, WebSocket at /v1/connect (Ctrl-C to stop)`);
      return;
    }
    if (chatter.some((re) => re.test(plain))) return;
    out.write(`${line}\n`);
  });
}
relay(dev.stdout, process.stdout);
relay(dev.stderr, process.stderr);

for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => dev.kill(sig));
dev.on("exit", async (code, signal) => {
  await web.dispose();
  process.exit(code ?? (signal ? 1 : 0));
});
