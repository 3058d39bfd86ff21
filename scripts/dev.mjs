// `npm start`: the whole platform locally under wrangler dev, with local Durable Objects, SQLite,
// D1 and assets in .wrangler/state. Prepares what a fresh clone lacks, then hands over.
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, existsSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const wrangler = `${root}node_modules/.bin/wrangler`;
const port = process.env.PORT ?? "8787";
const persist = process.env.EDGECHAT_STATE_DIR; // optional: keep state elsewhere (tests, benchmarks)
const quiet = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_HIDE_BANNER: "true" };
// The web app's bundle keeps its source map in development only (scripts/build-web.mjs).
const devBuild = { ...quiet, EDGECHAT_WEB_DEV: process.env.EDGECHAT_WEB_DEV ?? "1" };

if (!existsSync(`${root}.dev.vars`)) {
  copyFileSync(`${root}.dev.vars.example`, `${root}.dev.vars`);
  console.log("edgechat: created .dev.vars from .dev.vars.example (local development secrets)");
}
const persistArgs = persist ? ["--persist-to", persist] : [];
execFileSync(wrangler, ["d1", "migrations", "apply", "ACCOUNTS", "--local", ...persistArgs], { cwd: root, stdio: "inherit", env: { ...quiet, CI: "true" } });

console.log(`edgechat: starting on http://localhost:${port} (web app at /, API at /v1, WebSocket at /v1/connect)`);
const dev = spawn(wrangler, ["dev", "--ip", process.env.HOST ?? "127.0.0.1", "--port", port, ...persistArgs, ...process.argv.slice(2)], {
  cwd: root, stdio: "inherit", env: devBuild,
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => dev.kill(sig));
dev.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
