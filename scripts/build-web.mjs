// Bundles the web app (web/src/main.ts → web/public/app.js) with esbuild.
//   node scripts/build-web.mjs           one build, minified, no source map (what deploys; `npm run
//                                        deploy` and the tests' wrangler dev run it first)
//   EDGECHAT_WEB_DEV=1 node scripts/build-web.mjs
//                                        the same with the source map inlined
//   node scripts/build-web.mjs --watch   rebuild on every change, with the map (working on web/src)
// `npm start` (scripts/dev.mjs) builds and watches in-process with webBuildOptions(). The map is
// never a file of its own, so none can be deployed by accident; a stale app.js.map from older
// builds is removed.
import { build, context } from "esbuild";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = new URL("..", import.meta.url).pathname;

/** esbuild options for the web app; `dev` inlines the source map. */
export function webBuildOptions({ dev = false } = {}) {
  rmSync(new URL("../web/public/app.js.map", import.meta.url), { force: true });
  return {
    absWorkingDir: root,
    entryPoints: ["web/src/main.ts"],
    outfile: "web/public/app.js",
    bundle: true,
    format: "esm",
    platform: "browser",
    // Evergreen browsers of the last ~3 years: top-level await, class fields, `??=`.
    target: ["es2022", "chrome100", "firefox100", "safari15.4"],
    minify: true,
    sourcemap: dev ? "inline" : false,
    legalComments: "none",
    logLevel: "warning",
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const watch = process.argv.includes("--watch");
  const options = webBuildOptions({ dev: watch || process.env.EDGECHAT_WEB_DEV === "1" });
  if (watch) {
    const ctx = await context({ ...options, logLevel: "info" });
    await ctx.watch();
    console.log("build-web: watching web/src");
  } else {
    const started = Date.now();
    // Written only when it changed: a running `wrangler dev` reloads (dropping its objects' state
    // in memory and answering 503 meanwhile) whenever a file it serves is rewritten, and every
    // test process builds once.
    const result = await build({ ...options, write: false });
    const out = result.outputFiles[0];
    const same = existsSync(out.path) && Buffer.compare(readFileSync(out.path), Buffer.from(out.contents)) === 0;
    if (!same) writeFileSync(out.path, out.contents);
    console.log(`build-web: web/public/app.js ${(out.contents.byteLength / 1024).toFixed(1)} KiB${options.sourcemap ? " (source map inlined)" : ""} in ${Date.now() - started} ms${same ? " (unchanged, not rewritten)" : ""}`);
  }
}
