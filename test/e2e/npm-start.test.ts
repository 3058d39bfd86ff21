/**
 * `npm start` as a newcomer sees it: scripts/dev.mjs on a free port with fresh local state prints
 * one line per thing it did and one line saying where the app is; none of wrangler's start-up
 * chatter (custom build runs, the migration table and the prompt it answers itself, the bindings
 * table). Then Ctrl-C stops it and everything it started.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../support/dev-server.js";

const root = new URL("../../", import.meta.url).pathname;
const stateDir = mkdtempSync(join(tmpdir(), "edgechat-npm-start-"));
let dev: ChildProcess | undefined;

afterAll(() => {
  if (dev?.exitCode === null && dev.pid) process.kill(-dev.pid, "SIGKILL");
  rmSync(stateDir, { recursive: true, force: true });
});

describe("npm start", () => {
  it("starts quietly, says where the app is, serves it, and stops on Ctrl-C", async () => {
    const port = await freePort();
    // EDGECHAT_WEB_DEV=0: the bundle as it deploys, like the tests' own dev servers build it.
    const env = { ...process.env, PORT: String(port), EDGECHAT_STATE_DIR: stateDir, EDGECHAT_WEB_DEV: "0" };
    // Its own process group, so a signal reaches everything it started, as Ctrl-C in a terminal does.
    const child = spawn(process.execPath, [join(root, "scripts", "dev.mjs")], { cwd: root, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    dev = child;
    const lines: string[] = [];
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const ready = new Promise<void>((resolve, reject) => {
      for (const stream of [child.stdout!, child.stderr!]) {
        createInterface({ input: stream }).on("line", (line) => {
          lines.push(line);
          if (line.startsWith("edgechat is running at")) resolve();
        });
      }
      void exited.then((code) => reject(new Error(`npm start exited (${code}) before it was ready:\n${lines.join("\n")}`)));
    });
    await ready;

    const page = await fetch(`http://127.0.0.1:${port}/`);
    expect(page.status).toBe(200);
    const app = await fetch(`http://127.0.0.1:${port}/app.js`);
    expect(app.status).toBe(200);
    expect((await app.text()).length).toBeGreaterThan(10_000);
    const health = await fetch(`http://127.0.0.1:${port}/v1/health`);
    expect(health.status).toBe(200);
    await health.arrayBuffer();

    // Everything up to and including the ready line is ours, one line each; the request log may follow.
    const startUp = lines.slice(0, lines.findIndex((l) => l.startsWith("edgechat is running at")) + 1);
    const output = lines.join("\n");
    expect(startUp.filter((l) => !/^edgechat(:| is running)/.test(l)), output).toEqual([]);
    expect(startUp.filter((l) => l.startsWith("edgechat is running at")), output)
      .toEqual([`edgechat is running at http://localhost:${port} — web app at /, API at /v1, WebSocket at /v1/connect (Ctrl-C to stop)`]);
    // Every migration of the account databases, each named once, from the first.
    for (const what of ["account database", "EU account database"]) {
      const line = startUp.find((l) => l.endsWith(` to the local ${what}`));
      expect(line, output).toMatch(/^edgechat: applied 0001_accounts\.sql(, \d{4}_\w+\.sql)* to the local/);
      const names = line!.replace(/^edgechat: applied /, "").replace(/ to the local .*$/, "").split(", ");
      expect(new Set(names).size, output).toBe(names.length);
    }
    for (const chatter of ["[custom build]", "restarting build", "About to apply", "fallback value", "Your Worker has access", "Ready on"]) {
      expect(output, output).not.toContain(chatter);
    }

    process.kill(-child.pid!, "SIGINT");
    expect(await exited).not.toBeNull();
    // Nothing of it is left listening.
    await expect(fetch(`http://127.0.0.1:${port}/v1/health`)).rejects.toThrow();
  }, 180_000);
});
