/** What a run is measured on: the commit, the machine and the storage medium. Linux only. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, release, totalmem, type as osType } from "node:os";
import { join } from "node:path";
import type { RunMeta } from "./report.js";

const root = new URL("../../", import.meta.url).pathname;

/** The commit measured, and whether server code differs from it (uncommitted edits). */
export function revision(): RunMeta["revision"] {
  const git = (...a: string[]) => execFileSync("git", ["-C", root, ...a], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  try {
    const dirty = git("status", "--porcelain", "--", "workers", "shared", "durable-objects", "protocol", "wrangler.toml");
    return { commit: git("rev-parse", "--short", "HEAD"), server_code_modified: dirty.length > 0 };
  } catch {
    return { commit: "unknown (not a git checkout)", server_code_modified: false };
  }
}

export function machine(): RunMeta["machine"] {
  const wrangler = JSON.parse(readFileSync(join(root, "node_modules/wrangler/package.json"), "utf8")) as { version: string };
  return {
    nproc: Number(execFileSync("nproc", { encoding: "utf8" }).trim()),
    ram_gib: Math.round(totalmem() / 2 ** 30),
    cpu: cpus()[0]?.model.trim() ?? "unknown",
    node: process.version,
    wrangler: wrangler.version,
    os: `${osType()} ${release()}`,
  };
}

/** "ext4 on /dev/vda (disk)": the filesystem holding `path`, from /proc/mounts. */
export function medium(path: string): string {
  let best = { mount: "", text: "unknown" };
  for (const line of readFileSync("/proc/mounts", "utf8").split("\n")) {
    const [dev, mount, fstype] = line.split(" ");
    if (!dev || !mount || !fstype) continue;
    if ((path === mount || path.startsWith(mount.endsWith("/") ? mount : `${mount}/`)) && mount.length >= best.mount.length) {
      best = { mount, text: `${fstype} on ${dev}${fstype === "tmpfs" ? " (memory)" : ""}, ${path.split("/").slice(0, 2).join("/")}/…` };
    }
  }
  return best.text;
}

