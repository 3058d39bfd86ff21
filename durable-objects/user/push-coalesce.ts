/**
 * Push coalescing, as pure decisions over one channel's window (no clock, no storage: callers pass
 * `now`). The rule (seed §10.10, DESIGN "Offline delivery"): at most one push per user per
 * channel per window. The first missed message goes at once (leading edge: a person waiting for
 * an answer hears it immediately); what arrives during the window is merged into one update sent
 * when the window ends, which opens the next window. Every push of a channel uses one collapse
 * key, so the update replaces the notification that stands. A read that covers everything missed
 * ends the streak: pending updates are dropped and, if a notification stands, a clear goes out.
 */

/** A message the user's devices did not take, as the notification will show it. */
export interface MissedMessage {
  channelId: string;
  channelName: string;
  channelType: string;
  seq: number;
  senderUserId: string;
  senderName: string;
  /** Text to show, or null (previews off, not text, encrypted). */
  preview: string | null;
  sentAt: number;
  /** The trace id of the SEND that stored it, while in memory (merged updates read back from storage have none). */
  traceId?: string;
}

/** One channel's coalescing state; kept until the user reads the channel. */
export interface PushWindow {
  channelId: string;
  /** No push for this channel before this time (ms). */
  endsAt: number;
  /** Highest seq a push already went out for; 0 = no notification stands. */
  pushedSeq: number;
  /** Messages missed since the channel was last read: the count the notification shows. */
  count: number;
  /** Messages merged into the update due at `endsAt`. */
  pending: number;
  /** The newest missed message. */
  last: MissedMessage;
}

export interface Decision {
  /** The state to keep; undefined = forget the channel. */
  window: PushWindow | undefined;
  /** Send a message push for `window` now. */
  push: boolean;
  /** Send a clear now (a notification stood and the channel was read). */
  clear: boolean;
}

/**
 * A missed message. A seq at or below the newest one known is a retried delivery: nothing changes.
 *
 * @example
 * let d = onMissed(undefined, m1, 0, 30_000);      // push: true  (first message)
 * d = onMissed(d.window, m2, 5_000, 30_000);       // push: false (pending: 1)
 * d = onWindowEnd(d.window!, 30_000, 30_000);      // push: true  (count: 2)
 */
export function onMissed(window: PushWindow | undefined, m: MissedMessage, now: number, windowMs: number): Decision {
  if (window && m.seq <= window.last.seq) return { window, push: false, clear: false };
  const count = (window?.count ?? 0) + 1;
  if (!window || now >= window.endsAt) {
    return { window: { channelId: m.channelId, endsAt: now + windowMs, pushedSeq: m.seq, count, pending: 0, last: m }, push: true, clear: false };
  }
  return { window: { ...window, count, pending: window.pending + 1, last: m }, push: false, clear: false };
}

/** The alarm came: a window whose end has passed sends its merged update and opens the next window. */
export function onWindowEnd(window: PushWindow, now: number, windowMs: number): Decision {
  if (window.pending === 0 || now < window.endsAt) return { window, push: false, clear: false };
  return { window: { ...window, pending: 0, pushedSeq: window.last.seq, endsAt: now + windowMs }, push: true, clear: false };
}

/**
 * The user read the channel up to `readSeq` (any device, or sent a message in it). Reading
 * everything missed forgets the window and clears a standing notification; a partial read changes
 * nothing (the notification still stands for unread messages).
 */
export function onRead(window: PushWindow, readSeq: number): Decision {
  if (readSeq < window.last.seq) return { window, push: false, clear: false };
  return { window: undefined, push: false, clear: window.pushedSeq > 0 };
}

/** When the channel's window next needs the alarm, or undefined when nothing is pending. */
export function dueAt(window: PushWindow): number | undefined {
  return window.pending > 0 ? window.endsAt : undefined;
}
