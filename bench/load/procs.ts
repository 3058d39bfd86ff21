/**
 * The workerd processes behind a `wrangler dev`, and their resident memory. wrangler runs two:
 * a proxy that owns the public port and forwards every request and WebSocket, and the runtime
 * that runs the Worker and its Durable Objects. Linux only (/proc).
 */
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";

export interface WorkerdProcesses {
  /** Listens on the public port (`--socket-addr=entry=127.0.0.1:<port>`). */
  proxy: number;
  /** Runs the Worker and its Durable Objects. */
  worker: number;
}

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  cmdline: string;
}

function listProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'.
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const ppid = Number(stat.slice(close + 2).split(" ")[1]);
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ");
      out.push({ pid: Number(name), ppid, comm, cmdline });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

function classify(workerds: ProcInfo[], port: number): WorkerdProcesses | undefined {
  const proxy = workerds.find((p) => p.cmdline.includes(`--socket-addr=entry=127.0.0.1:${port} `) || p.cmdline.includes(`--socket-addr=entry=localhost:${port} `));
  if (!proxy) return undefined;
  const worker = workerds.find((p) => p.pid !== proxy.pid && p.ppid === proxy.ppid);
  return worker ? { proxy: proxy.pid, worker: worker.pid } : undefined;
}

/** The workerd pair started by the wrangler process `rootPid` (found among its descendants). */
export function workerdUnder(rootPid: number, port: number): WorkerdProcesses | undefined {
  const all = listProcesses();
  const inTree = new Set([rootPid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) if (!inTree.has(p.pid) && inTree.has(p.ppid)) { inTree.add(p.pid); grew = true; }
  }
  return classify(all.filter((p) => inTree.has(p.pid) && p.comm === "workerd"), port);
}

/** The workerd pair serving a `wrangler dev` someone else started on `port`. */
export function workerdOnPort(port: number): WorkerdProcesses | undefined {
  return classify(listProcesses().filter((p) => p.comm === "workerd"), port);
}

/** Resident set size in KiB (VmRSS of /proc/<pid>/status). */
export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** Every workerd process on the machine, for the end-of-run leftover check. */
export function allWorkerdPids(): number[] {
  return listProcesses().filter((p) => p.comm === "workerd").map((p) => p.pid);
}

let clockTicks: number | undefined;

/** CPU time (user + system) a process has used so far, in seconds. */
export function cpuSeconds(pid: number): number {
  clockTicks ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After "pid (comm) ": state is field 3, so utime (14) and stime (15) are at offsets 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/** CPU seconds used by wrangler's two workerd processes and by this bench process. */
export interface CpuUse {
  proxy: number;
  worker: number;
  bench: number;
}

/** Reads CPU counters now; the returned function gives the CPU used since (undefined if unknown). */
export function cpuMeter(procs: WorkerdProcesses | undefined): () => CpuUse | undefined {
  const read = () => (procs ? { proxy: cpuSeconds(procs.proxy), worker: cpuSeconds(procs.worker), bench: cpuOfBench() } : undefined);
  const before = read();
  return () => {
    let after: CpuUse | undefined;
    try { after = read(); } catch { return undefined; } // a process went away
    if (!before || !after) return undefined;
    const d = (k: keyof CpuUse) => Math.round((after[k] - before[k]) * 100) / 100;
    return { proxy: d("proxy"), worker: d("worker"), bench: d("bench") };
  };
}

function cpuOfBench(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}
