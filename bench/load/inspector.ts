/**
 * A Chrome DevTools protocol session with the Worker's isolate under `wrangler dev`, through the
 * inspector port it was started with (test/support/dev-server.ts passes a free one): heap after
 * a full GC, heap snapshots, CPU profiles.
 */
import { writeFileSync } from "node:fs";
import WebSocket from "ws";

export class Inspector {
  private next = 0;
  private readonly waiting = new Map<number, (reply: { result?: Record<string, unknown> }) => void>();
  private chunks: string[] = [];

  private constructor(private readonly ws: WebSocket) {
    ws.on("message", (data) => {
      const m = JSON.parse(data.toString()) as { id?: number; method?: string; params?: { chunk: string }; result?: Record<string, unknown> };
      if (m.id !== undefined) {
        this.waiting.get(m.id)?.(m);
        this.waiting.delete(m.id);
      } else if (m.method === "HeapProfiler.addHeapSnapshotChunk" && m.params) this.chunks.push(m.params.chunk);
    });
  }

  static async open(port: number): Promise<Inspector> {
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as { webSocketDebuggerUrl: string }[];
    if (!targets[0]) throw new Error(`no inspector target on port ${port}`);
    const ws = new WebSocket(targets[0].webSocketDebuggerUrl, { maxPayload: 2 ** 31 });
    await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
    return new Inspector(ws);
  }

  private call(method: string, params: object = {}): Promise<{ result?: Record<string, unknown> }> {
    const id = ++this.next;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** JS heap in use after a full GC, KiB. */
  async heapKiB(): Promise<number> {
    await this.call("HeapProfiler.collectGarbage");
    const r = await this.call("Runtime.getHeapUsage");
    return Math.round(Number(r.result?.usedSize ?? 0) / 1024);
  }

  async snapshot(path: string): Promise<void> {
    this.chunks = [];
    await this.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    writeFileSync(path, this.chunks.join(""));
    this.chunks = [];
  }

  /** Starts sampling the isolate's CPU (every `intervalUs`). */
  async startProfile(intervalUs = 200): Promise<void> {
    await this.call("Profiler.enable");
    await this.call("Profiler.setSamplingInterval", { interval: intervalUs });
    await this.call("Profiler.start");
  }

  /** Stops sampling and writes the profile (Chrome DevTools' .cpuprofile format) to `path`. */
  async stopProfile(path: string): Promise<void> {
    const r = await this.call("Profiler.stop");
    writeFileSync(path, JSON.stringify(r.result?.profile ?? {}));
  }

  close(): void {
    this.ws.close();
  }
}

