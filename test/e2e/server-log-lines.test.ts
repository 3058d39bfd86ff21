/**
 * A server's output read line by line (test/support/lines.ts), as startDevServer's log and
 * ServerLines read wrangler's: a real child process writes a JSON log line in three pieces with
 * pauses between them (so the pipe hands them over as separate chunks), a line with a multi-byte
 * character cut inside it, and a last line with no newline. Each must arrive whole, once.
 */
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { eachLine } from "../support/lines.js";
import { ServerLines } from "../support/work-log.js";

const SCRIPT = `
const line = JSON.stringify({ level: "log", event: "fanout.round_done", seq: 7, pad: "x".repeat(5000) });
const pause = () => new Promise((r) => setTimeout(r, 150));
(async () => {
  process.stdout.write("first line\\n" + line.slice(0, 10));
  await pause();
  process.stdout.write(line.slice(10, 3000));
  await pause();
  process.stdout.write(line.slice(3000) + "\\n");
  const euro = Buffer.from("price: 5 \\u20ac\\n");
  process.stdout.write(euro.subarray(0, euro.length - 2));
  await pause();
  process.stdout.write(euro.subarray(euro.length - 2));
  process.stdout.write("no newline at the end");
})();
`;

describe("a child process's output, line by line", () => {
  it("keeps a line written in several chunks whole, and the last line without a newline", async () => {
    const child = spawn(process.execPath, ["-e", SCRIPT], { stdio: ["ignore", "pipe", "pipe"] });
    const lines: string[] = [];
    eachLine(child.stdout, (l) => lines.push(l));
    const parsed = new ServerLines(child);
    await new Promise((resolve) => child.once("close", resolve));

    expect(lines).toHaveLength(4);
    expect(lines[0]).toBe("first line");
    expect(JSON.parse(lines[1]!)).toMatchObject({ event: "fanout.round_done", seq: 7 });
    expect(lines[1]).toHaveLength(JSON.stringify({ level: "log", event: "fanout.round_done", seq: 7, pad: "x".repeat(5000) }).length);
    expect(lines[2]).toBe("price: 5 \u20ac");
    expect(lines[3]).toBe("no newline at the end");
    expect(parsed.since(0).map((l) => l.event)).toEqual(["fanout.round_done"]);
  }, 30_000);
});
