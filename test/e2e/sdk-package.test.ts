/**
 * The SDK as another project gets it: `npm pack` in client/, the tarball installed into a fresh
 * project with no network (`--offline`; it has no dependencies), then used from plain Node scripts
 * and from a page bundled with esbuild in Chromium, against a real wrangler dev.
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDevServer, type DevServer } from "../support/dev-server.js";

const root = new URL("../../", import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SLOW = 240_000;

let server: DevServer;
let work: string;
let project: string;
let tarball: string;

// npm run by `npm test` exports npm_* settings; the consumer project must not inherit them.
const npmEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_")));

function npm(args: string[], cwd: string): string {
  return execFileSync("npm", args, { cwd, env: npmEnv, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Runs a script of the consumer project with plain `node`; its last stdout line is its JSON result. */
function node(args: string[]): { status: number | null; result: Record<string, unknown>; output: string } {
  const r: SpawnSyncReturns<string> = spawnSync(process.execPath, args, { cwd: project, env: npmEnv, encoding: "utf8", timeout: 120_000 });
  const output = `${r.stdout}\n${r.stderr}`;
  const last = r.stdout.trim().split("\n").at(-1) ?? "";
  let result: Record<string, unknown> = {};
  try {
    result = JSON.parse(last) as Record<string, unknown>;
  } catch {
    // reported through `output`
  }
  return { status: r.status, result, output };
}

const tag = () => Math.random().toString(36).slice(2, 8);

beforeAll(async () => {
  server = await startDevServer();
  work = mkdtempSync(join(tmpdir(), "edgechat-sdk-package-"));
  npm(["pack", "--pack-destination", work], join(root, "client")); // prepack builds client/dist
  tarball = join(work, readdirSync(work).find((f) => f.endsWith(".tgz"))!);
  project = join(work, "app");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "edgechat-sdk-consumer", private: true, type: "module" }, null, 2));
  npm(["install", tarball, "--offline", "--no-audit", "--no-fund"], project);
  writeFileSync(join(project, "chat.mjs"), CHAT_SCRIPT);
}, SLOW);

afterAll(async () => {
  await server?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

// Two users on two devices: alice sends in a DM, bob receives it. Prints one JSON line.
const CHAT_SCRIPT = `
import { createClient } from "@edgechat/client";

const [url, tag, mode] = process.argv.slice(2);
if (mode === "no-websocket") delete globalThis.WebSocket;
const password = "correct horse battery";
const make = (name) => createClient({ url, deviceId: \`node-\${name}\`, credentials: { username: \`\${name}_\${tag}\`, password } });
const alice = make("alice");
const bob = make("bob");
try {
  await alice.register({ username: \`alice_\${tag}\`, password });
  const b = await bob.register({ username: \`bob_\${tag}\`, password });
  const dm = await alice.channels.create({ type: "dm", member: b.user_id });
  await Promise.all([alice.connect(), bob.connect()]);
  const received = new Promise((resolve) => bob.on("message", (m) => { if (m.channel_id === dm.channel_id && m.content.text?.text === "hello from node") resolve(m); }));
  const ack = await alice.send(dm.channel_id, "hello from node");
  const m = await received;
  console.log(JSON.stringify({ ok: true, globalWebSocket: typeof globalThis.WebSocket === "function", sameSeq: ack.seq === m.seq, text: m.content.text?.text }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, code: err.code, message: err.message }));
} finally {
  alice.disconnect();
  bob.disconnect();
}
`;

describe("@edgechat/client as a package", () => {
  it("packs one ES module with its declarations and nothing else", () => {
    const files = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).trim().split("\n").sort();
    expect(files).toContain("package/dist/index.js");
    expect(files).toContain("package/dist/types/client/index.d.ts");
    expect(files).toContain("package/README.md");
    expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts")), "no TypeScript sources").toEqual([]);

    const installed = join(project, "node_modules", "@edgechat", "client");
    const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as Record<string, unknown>;
    expect(manifest.dependencies, "bundles what it needs").toBeUndefined();
    expect(manifest).toMatchObject({ type: "module", sideEffects: false, peerDependenciesMeta: { ws: { optional: true } } });
    expect(existsSync(join(project, "node_modules", "ws")), "the optional peer is not installed for you").toBe(false);

    const js = readFileSync(join(installed, "dist", "index.js"), "utf8");
    expect(js.match(/^\s*import\s.*from\s/gm) ?? [], "no static imports at run time").toEqual([]);
    expect(js).not.toMatch(/\.\.\/protocol\//);
  });

  it("loads without top-level await: require() of the ES module works (Node ≥ 20.19)", () => {
    writeFileSync(join(project, "require.cjs"), `const sdk = require("@edgechat/client"); console.log(JSON.stringify({ ok: typeof sdk.createClient === "function" }));`);
    const r = node(["require.cjs"]);
    expect(r.result, r.output).toEqual({ ok: true });
  });

  it("type-checks in a strict consumer project (nodenext, no DOM, no skipLibCheck)", () => {
    writeFileSync(join(project, "consumer.ts"), `
      import { createClient, EdgechatError, type ChatMessage, type ClientOptions } from "@edgechat/client";
      const options: ClientOptions = { url: "http://127.0.0.1:8787", deviceId: "types-1", encoding: "json" };
      const client = createClient(options);
      client.on("message", (m: ChatMessage) => { const text: string | undefined = m.content.text?.text; void text; });
      // @ts-expect-error channel ids are strings: the types are real, not any
      void client.send(42, "hello");
      export const ok: boolean = client.state === "offline" && new EdgechatError({ code: "timeout", message: "x" }) instanceof Error;
    `);
    writeFileSync(join(project, "tsconfig.json"), JSON.stringify({
      compilerOptions: { strict: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", lib: ["es2022"], types: [], skipLibCheck: false, noEmit: true },
      files: ["consumer.ts"],
    }));
    const r = spawnSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], { cwd: project, encoding: "utf8" });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  }, SLOW);

  it("on Node without a WebSocket and without `ws`, connect() says what to install", () => {
    const r = node(["chat.mjs", server.url, tag(), "no-websocket"]);
    expect(r.result, r.output).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(String(r.result.message)).toMatch(/npm install ws/);
  });

  it("chats from Node with the platform's WebSocket (Node 22; Node 20 behind --experimental-websocket)", () => {
    const major = Number(process.versions.node.split(".")[0]);
    const r = node([...(major < 22 ? ["--experimental-websocket"] : []), "chat.mjs", server.url, tag()]);
    expect(r.result, r.output).toMatchObject({ ok: true, globalWebSocket: true, sameSeq: true, text: "hello from node" });
  });

  it("chats from Node 20 with the optional `ws` peer installed, loaded only on connect()", () => {
    // The repository's own copy of ws (the lockfile's version), packed and installed offline.
    npm(["pack", join(root, "node_modules", "ws"), "--pack-destination", work], work);
    const wsTarball = join(work, readdirSync(work).find((f) => /^ws-.*\.tgz$/.test(f))!);
    npm(["install", wsTarball, "--offline", "--no-audit", "--no-fund"], project);
    const r = node(["chat.mjs", server.url, tag(), "no-websocket"]);
    expect(r.result, r.output).toMatchObject({ ok: true, globalWebSocket: false, sameSeq: true, text: "hello from node" });
  }, SLOW);

  it("chats from a page bundled with esbuild, in Chromium", async () => {
    expect(existsSync(CHROMIUM), `Chromium not installed at ${CHROMIUM} (apt-get install -y chromium)`).toBe(true);
    writeFileSync(join(project, "page.js"), `
      import { createClient } from "@edgechat/client";
      window.chat = async (tag) => {
        const password = "correct horse battery";
        const make = (name) => createClient({ url: location.origin, deviceId: "browser-" + name, credentials: { username: name + "_" + tag, password } });
        const alice = make("alice");
        const bob = make("bob");
        // What the clients went through, so a connection that never opens fails with a reason.
        const states = [];
        alice.on("connectionState", (s) => states.push("alice " + s.state + (s.reason ? " (" + s.reason + ")" : "")));
        bob.on("connectionState", (s) => states.push("bob " + s.state + (s.reason ? " (" + s.reason + ")" : "")));
        const run = async () => {
          await alice.register({ username: "alice_" + tag, password });
          const b = await bob.register({ username: "bob_" + tag, password });
          const dm = await alice.channels.create({ type: "dm", member: b.user_id });
          await Promise.all([alice.connect(), bob.connect()]);
          const received = new Promise((resolve) => bob.on("message", (m) => { if (m.channel_id === dm.channel_id && m.content.text?.text === "hello from the browser") resolve(m); }));
          const ack = await alice.send(dm.channel_id, "hello from the browser");
          const m = await received;
          return { ok: true, sameSeq: ack.seq === m.seq, text: m.content.text?.text };
        };
        try {
          return await Promise.race([run(), new Promise((resolve) => setTimeout(() => resolve({ ok: false, states }), 120000))]);
        } finally {
          alice.disconnect();
          bob.disconnect();
        }
      };
    `);
    const bundle = await build({
      absWorkingDir: project, entryPoints: ["page.js"], bundle: true, format: "esm", platform: "browser",
      write: false, metafile: true, logLevel: "silent", outfile: "bundle.js",
    });
    expect(Object.keys(bundle.metafile.inputs).sort(), "the page and the package, nothing else").toEqual(["node_modules/@edgechat/client/dist/index.js", "page.js"]);
    const js = bundle.outputFiles.find((f) => f.path.endsWith(".js"))!.text;

    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      // The page comes from wrangler dev itself (its index.html, CSP and all), with the consumer's
      // bundle in place of the web app's script. A page Playwright made up would have no address,
      // and Chromium's Local Network Access checks then block its WebSocket to 127.0.0.1.
      await page.route(`${server.url}/app.js`, (route) => route.fulfill({ contentType: "text/javascript", body: js }));
      await page.goto(`${server.url}/`);
      await page.waitForFunction(() => typeof (window as unknown as { chat?: unknown }).chat === "function", undefined, { timeout: 60_000 });
      const result = await page.evaluate((t) => (window as unknown as { chat(tag: string): Promise<unknown> }).chat(t), tag());
      expect(result).toEqual({ ok: true, sameSeq: true, text: "hello from the browser" });
      expect(errors).toEqual([]);
    } finally {
      await browser?.close();
    }
  }, SLOW);
});
