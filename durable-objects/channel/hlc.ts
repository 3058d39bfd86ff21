/**
 * Hybrid logical clock for one channel: a (48-bit ms, 16-bit logical) pair.
 *
 * The single writer of a channel advances it with next = max(prev + 1, (now_ms, 0)), comparing
 * pairs as the 64-bit number ms·2^16 + logical. The result is strictly increasing whatever the
 * wall clock does (a backwards jump only bumps the logical part) and stays close to wall time, so
 * "12:03:04.042 #5" is readable where a Lamport counter is not.
 *
 * The 64-bit value exceeds Number.MAX_SAFE_INTEGER and JavaScript's `<<` truncates to 32 bits, so
 * the pair is kept as two numbers (two SQLite INTEGER columns) and rendered as 16 hex digits,
 * whose string order is the clock order.
 */
export interface Hlc {
  readonly ms: number;
  readonly logical: number;
}

export const HLC_ZERO: Hlc = { ms: 0, logical: 0 };
export const MAX_HLC_MS = 2 ** 48 - 1;
export const MAX_HLC_LOGICAL = 2 ** 16 - 1;

/** The next clock value after `prev` at wall time `nowMs`. */
export function nextHlc(prev: Hlc, nowMs: number): Hlc {
  const now = Number.isFinite(nowMs) ? Math.min(Math.max(Math.floor(nowMs), 0), MAX_HLC_MS) : 0;
  if (now > prev.ms) return { ms: now, logical: 0 };
  // prev + 1 on the 64-bit value: the logical part carries into the ms part when it overflows.
  if (prev.logical < MAX_HLC_LOGICAL) return { ms: prev.ms, logical: prev.logical + 1 };
  if (prev.ms >= MAX_HLC_MS) throw new RangeError("HLC exhausted: the 48-bit millisecond part overflowed.");
  return { ms: prev.ms + 1, logical: 0 };
}

export function compareHlc(a: Hlc, b: Hlc): number {
  return a.ms !== b.ms ? a.ms - b.ms : a.logical - b.logical;
}

/** 16 lower-case hex digits, big-endian: 12 for ms, 4 for logical. */
export function hlcToHex(h: Hlc): string {
  return h.ms.toString(16).padStart(12, "0") + h.logical.toString(16).padStart(4, "0");
}

export function hlcFromHex(hex: string): Hlc | undefined {
  if (!/^[0-9a-f]{16}$/.test(hex)) return undefined;
  return { ms: parseInt(hex.slice(0, 12), 16), logical: parseInt(hex.slice(12), 16) };
}

/** The exact 64-bit value, for interop with systems that store the HLC as one integer. */
export function hlcToBigInt(h: Hlc): bigint {
  return (BigInt(h.ms) << 16n) | BigInt(h.logical);
}

/** server_msg_id: 128 bits = 64-bit HLC ‖ 64-bit channel seq, as 32 hex digits. */
export function serverMsgId(h: Hlc, seq: number): string {
  return hlcToHex(h) + seq.toString(16).padStart(16, "0");
}

export function parseServerMsgId(id: string): { hlc: Hlc; seq: number } | undefined {
  if (!/^[0-9a-f]{32}$/.test(id)) return undefined;
  const hlc = hlcFromHex(id.slice(0, 16));
  const seq = parseInt(id.slice(16), 16);
  return hlc && Number.isSafeInteger(seq) ? { hlc, seq } : undefined;
}
