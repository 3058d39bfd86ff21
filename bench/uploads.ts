/**
 * `npx tsx bench/uploads.ts`: local upload speed and the Worker's memory while files go up
 * through the local path (signed Worker URLs streaming into wrangler dev's R2). Starts its own
 * wrangler dev, uploads 10 MB and 100 MB files with the SDK, samples the resident memory
 * (VmRSS) of both workerd processes every 20 ms, and prints a Markdown table for BENCHMARKS.md.
 *
 *   npx tsx bench/uploads.ts [--sizes 10,100] [--repeat 2]
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { createClient, defaultUploadTransport, type UploadTransport, type WebSocketConstructor } from "../client/index.js";
import { startDevServer } from "../test/support/dev-server.js";
import { rssKiB, workerdUnder } from "./load/procs.js";

const { values: args } = parseArgs({ options: { sizes: { type: "string", default: "10,100" }, repeat: { type: "string", default: "2" } } });
const sizesMB = args.sizes.split(",").map(Number);
const repeat = Number(args.repeat);

const server = await startDevServer({ vars: { PRESENCE_TTL_MS: "90000", PRESENCE_OFFLINE_GRACE_MS: "15000" } });
try {
  const procs = workerdUnder(server.process.pid!, server.port);
  if (!procs) throw new Error("could not find wrangler's workerd processes");
  let partMs = 0;
  const inner = defaultUploadTransport();
  const timed: UploadTransport = async (req) => {
    const t = performance.now();
    try {
      return await inner(req);
    } finally {
      partMs = Math.max(partMs, performance.now() - t);
    }
  };
  const username = `bench_${Math.random().toString(36).slice(2, 8)}`;
  const client = createClient({ url: server.url, deviceId: "bench-uploads", credentials: { username, password: "correct horse battery" }, WebSocket: WebSocket as unknown as WebSocketConstructor, uploadTransport: timed });
  await client.register({ username, password: "correct horse battery" });
  const { channel_id: channelId } = await client.channels.create({ type: "group", name: "bench", members: [] });

  // Warm up (first request compiles the Worker, opens the bucket).
  await client.attachments.upload(new Uint8Array(randomBytes(1000)), { channelId, filename: "warm.bin", contentType: "application/zip" });
  await new Promise((r) => setTimeout(r, 1000));
  const idle = { worker: rssKiB(procs.worker), proxy: rssKiB(procs.proxy) };
  console.log(`idle after warm-up: worker ${(idle.worker / 1024).toFixed(0)} MiB, proxy ${(idle.proxy / 1024).toFixed(0)} MiB`);

  const rows: string[] = [];
  for (const mb of sizesMB) {
    for (let run = 1; run <= repeat; run++) {
      const data = new Uint8Array(randomBytes(mb * 1_000_000));
      const peak = { worker: 0, proxy: 0, transfer: 0, complete: 0 };
      let partsDoneAt = 0;
      const sample = () => {
        const w = rssKiB(procs.worker);
        peak.worker = Math.max(peak.worker, w);
        peak.proxy = Math.max(peak.proxy, rssKiB(procs.proxy));
        if (partsDoneAt === 0) peak.transfer = Math.max(peak.transfer, w); else peak.complete = Math.max(peak.complete, w);
      };
      const before = { worker: rssKiB(procs.worker), proxy: rssKiB(procs.proxy) };
      const timer = setInterval(sample, 20);
      partMs = 0;
      let bytesDone = 0;
      const t0 = performance.now();
      await client.attachments.upload(data, {
        channelId, filename: `bench-${mb}.bin`, contentType: "application/zip", sha256: false,
        onProgress: (p) => { bytesDone = p.loaded; if (p.loaded === p.total && partsDoneAt === 0) partsDoneAt = performance.now(); },
      });
      const total = (performance.now() - t0) / 1000;
      clearInterval(timer);
      sample();
      void bytesDone;
      const transfer = ((partsDoneAt || performance.now()) - t0) / 1000;
      const mib = (k: number) => (k / 1024).toFixed(0);
      const line = `| ${mb} MB | ${run} | ${(mb / total).toFixed(1)} | ${total.toFixed(1)} | ${(mb / transfer).toFixed(1)} | ${(partMs / 1000).toFixed(1)} | ${mib(before.worker)} → ${mib(peak.transfer)} → ${mib(peak.complete)} | ${mib(before.proxy)} → ${mib(peak.proxy)} |`;
      console.log(line);
      rows.push(line);
    }
  }
  console.log("\n| file | run | MB/s (presign → complete) | seconds | MB/s (bytes only) | slowest PUT (s) | worker VmRSS MiB (before → peak while parts go up → peak while completing) | proxy VmRSS MiB (before → peak) |");
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const r of rows) console.log(r);
  client.disconnect();
} finally {
  await server.stop();
}
