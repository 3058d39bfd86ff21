// Bundles the web app (web/src/main.ts → web/public/app.js) with esbuild. Runs as wrangler's
// [build] command, so `npm start` (wrangler dev) and `wrangler deploy` always serve a fresh bundle.
//   node scripts/build-web.mjs           one build, minified, with a linked source map
//   node scripts/build-web.mjs --watch   rebuild on every change (for working on web/src alone)
import { build, context } from "esbuild";

const root = new URL("..", import.meta.url).pathname;
const options = {
  absWorkingDir: root,
  entryPoints: ["web/src/main.ts"],
  outfile: "web/public/app.js",
  bundle: true,
  format: "esm",
  platform: "browser",
  // Evergreen browsers of the last ~3 years: top-level await, class fields, `??=`.
  target: ["es2022", "chrome100", "firefox100", "safari15.4"],
  minify: true,
  sourcemap: "linked",
  legalComments: "none",
  logLevel: "warning",
};

if (process.argv.includes("--watch")) {
  const ctx = await context({ ...options, logLevel: "info" });
  await ctx.watch();
  console.log("build-web: watching web/src");
} else {
  const started = Date.now();
  const result = await build({ ...options, metafile: true });
  const bytes = Object.values(result.metafile.outputs).find((o) => o.entryPoint)?.bytes ?? 0;
  console.log(`build-web: web/public/app.js ${(bytes / 1024).toFixed(1)} KiB in ${Date.now() - started} ms`);
}
