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
import { rmSync } from "node:fs";
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
    const result = await build({ ...options, metafile: true });
    const bytes = Object.values(result.metafile.outputs).find((o) => o.entryPoint)?.bytes ?? 0;
    console.log(`build-web: web/public/app.js ${(bytes / 1024).toFixed(1)} KiB${options.sourcemap ? " (source map inlined)" : ""} in ${Date.now() - started} ms`);
  }
}
