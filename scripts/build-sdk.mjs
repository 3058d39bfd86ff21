// `npm run build:sdk`: the client SDK as the package @edgechat/client (client/package.json), in
// client/dist. `npm pack` in client/ runs it first (prepack).
//   dist/index.js              one ES module: the SDK, the protocol code it shares with the server
//                              (protocol/) and protobufjs's minimal runtime, bundled. Nothing is
//                              imported at run time but the optional `ws` peer, on Node 20 only.
//   dist/index.js.map
//   dist/types/client/*.d.ts   declarations, and the protocol types they name (dist/types/protocol)
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const dist = join(root, "client", "dist");
const started = Date.now();
rmSync(dist, { recursive: true, force: true });

// protobufjs loads long.js when it can, but the generated code turns it off (int64 fields are plain
// numbers: protocol/generated/chat.js sets util.Long to undefined), so the package leaves it out.
const withoutLongJs = {
  name: "without-long-js",
  setup(b) {
    b.onResolve({ filter: /^long$/ }, () => ({ path: "long", namespace: "without-long-js" }));
    b.onLoad({ filter: /.*/, namespace: "without-long-js" }, () => ({ contents: "module.exports = null;", loader: "js" }));
  },
};

const result = await build({
  absWorkingDir: root,
  entryPoints: ["client/index.ts"],
  outfile: "client/dist/index.js",
  bundle: true,
  format: "esm",
  platform: "neutral",
  mainFields: ["module", "main"],
  // Browsers of the last ~4 years, Node ≥ 20, and the bundlers apps use. No top-level await: an
  // importer may not support it, so the build fails if any creeps in.
  target: ["es2020"],
  supported: { "top-level-await": false },
  sourcemap: true,
  metafile: true,
  logLevel: "warning",
  plugins: [withoutLongJs],
});

// Everything bundled must come from the SDK, the shared protocol code or protobufjs.
const allowed = /^(client|protocol)\/|^node_modules\/(protobufjs|@protobufjs)\/|^without-long-js:/;
const strays = Object.keys(result.metafile.inputs).filter((input) => !allowed.test(input));
if (strays.length > 0) fail(`the SDK bundle pulls in ${strays.join(", ")}; the package ships only client/, protocol/ and protobufjs`);

// Declarations: tsc emits every file the SDK compiles; ship the ones index.d.ts reaches, and make
// sure they name nothing outside the package (no other package's types, no missing file).
const emitted = mkdtempSync(join(tmpdir(), "edgechat-sdk-types-"));
try {
  execFileSync(join(root, "node_modules", ".bin", "tsc"), ["-p", "client/tsconfig.build.json", "--outDir", emitted], { cwd: root, stdio: "inherit" });
  const shipped = new Set();
  const pending = ["client/index.d.ts"];
  while (pending.length > 0) {
    const file = pending.pop();
    if (shipped.has(file)) continue;
    shipped.add(file);
    const text = readFileSync(join(emitted, file), "utf8");
    if (/\/\/\/\s*<reference/.test(text)) fail(`${file} has a triple-slash reference`);
    const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
    for (const [, spec] of code.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["']([^"']+)["']/g)) {
      if (!spec.startsWith(".")) fail(`${file} imports "${spec}": the package's types must not need another package`);
      const target = relative(emitted, join(emitted, dirname(file), spec.replace(/\.js$/, ".d.ts")));
      if (!existsSync(join(emitted, target))) fail(`${file} imports "${spec}", which has no declaration`);
      pending.push(target);
    }
  }
  for (const file of shipped) cpSync(join(emitted, file), join(dist, "types", file));
  const bytes = result.metafile.outputs["client/dist/index.js"]?.bytes ?? 0;
  console.log(`build-sdk: client/dist/index.js ${(bytes / 1024).toFixed(1)} KiB and ${shipped.size} declaration files in ${Date.now() - started} ms`);
} finally {
  rmSync(emitted, { recursive: true, force: true });
}

function fail(message) {
  console.error(`build-sdk: ${message}`);
  process.exit(1);
}
