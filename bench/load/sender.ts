/**
 * The sender pattern: each sender keeps at most `window` SENDs unacked (edgechat's flow-control
 * window is 64) and, when `ratePerSec` > 0, paces itself to that many messages per second. The
 * pacing is there for edgechat's per-sender rate limit (10 msg/s per channel, a later issue):
 * either pace the bench, or keep it unpaced and raise the limit with a bench-only `--var`.
 */
import type { Device } from "./target.js";
import type { Tracker } from "./tracker.js";
import { sleep } from "./pool.js";

export interface SenderPattern {
  window: number;
  /** Messages per second per sender; 0 = as fast as the window allows. */
  ratePerSec: number;
}

export interface SendJob {
  device: Device;
  channelId: string;
  count: number;
  /** Devices that must receive each message (never the sending device). */
  recipients: readonly string[];
  /** Unique per message across the whole run. */
  idPrefix: string;
}

/** A chat-sized text body (about 60 bytes). */
export function messageText(i: number): string {
  return `bench message ${i}: the quick brown fox jumps over the lazy dog`;
}

/**
 * Sends `job.count` messages under `pattern`; resolves once all are settled (acked or failed) or
 * `deadline` (performance.now() ms) passes. Returns how many were sent.
 */
export async function runSender(job: SendJob, pattern: SenderPattern, tracker: Tracker, deadline: number): Promise<number> {
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const poke = () => { const w = wake; wake = undefined; w?.(); };
  const settled = () => { inFlight--; poke(); };
  // One timer for the whole run: wakes a sender stuck on a full window when time is up.
  const expiry = setTimeout(poke, Math.max(0, deadline - performance.now()));
  const waitForAck = () => new Promise<void>((resolve) => { wake = resolve; });
  const timeLeft = () => performance.now() < deadline;
  const start = performance.now();
  let sent = 0;
  try {
    while (sent < job.count && timeLeft()) {
      while (inFlight >= Math.max(1, pattern.window) && timeLeft()) await waitForAck();
      if (!timeLeft()) break;
      if (pattern.ratePerSec > 0) {
        const wait = start + (sent * 1000) / pattern.ratePerSec - performance.now();
        if (wait > 0) await sleep(Math.min(wait, deadline - performance.now()));
      }
      const id = `${job.idPrefix}-${sent}`;
      tracker.sent(id, job.channelId, job.recipients, settled);
      inFlight++;
      job.device.sendText(job.channelId, id, messageText(sent));
      sent++;
    }
    while (inFlight > 0 && timeLeft()) await waitForAck();
  } finally {
    clearTimeout(expiry);
  }
  return sent;
}
