/** The wrangler dev servers a bench run starts itself: stopped at the end, restartable in place. */
import { startDevServer, type DevServer, type DevServerOptions } from "../../test/support/dev-server.js";
import { workerdOnPort } from "./procs.js";

export class OwnedServer {
  private constructor(readonly name: string, private server: DevServer, private readonly options: DevServerOptions, private readonly log: (line: string) => void) {}

  static async start(name: string, options: DevServerOptions, log: (line: string) => void): Promise<OwnedServer> {
    const t0 = performance.now();
    const server = await startDevServer(options);
    log(`${name}: wrangler dev on ${server.url} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    return new OwnedServer(name, server, options, log);
  }

  get url(): string {
    return this.server.url;
  }

  /** A position in wrangler's output, for `problemsSince`. */
  logMark(): number {
    return this.server.log.length;
  }

  /** Lines wrangler printed since `mark` that look like trouble (at most `max`). */
  problemsSince(mark: number, max = 15): string[] {
    return this.server.log.slice(mark).filter((l) => /error|warn|fail|overload|exception|uncaught/i.test(l) && !/Request\.cf|cf object/i.test(l)).slice(0, max);
  }

  /** Where to look for its workerd processes (they change on restart). */
  source(): { rootPid: number } {
    return { rootPid: this.server.process.pid ?? -1 };
  }

  /** Stops and starts again on the same port and state: objects on disk, none in memory. */
  async restart(): Promise<void> {
    const t0 = performance.now();
    await this.stop();
    this.server = await startDevServer({ ...this.options, port: this.server.port, migrate: false });
    this.log(`${this.name}: restarted for a clean memory reading (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }

  async stop(): Promise<void> {
    await this.server.stop().catch(() => this.server.kill());
    // workerd children normally exit with wrangler; make sure none is left on our port.
    const left = workerdOnPort(this.server.port);
    if (left) for (const pid of [left.proxy, left.worker]) { try { process.kill(pid, "SIGKILL"); } catch { /* gone */ } }
  }
}
