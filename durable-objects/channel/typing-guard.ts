/**
 * Which typing indicators a channel passes on. Typing is lossy by design (nothing is stored;
 * clients repeat `typing: true` every few seconds while the user types and receivers let an
 * indicator lapse), so the guard may drop freely:
 * - a repeat of the state last passed on is dropped unless it is a `true` at least
 *   TYPING_REFRESH_MS after the last one passed (the keep-alive);
 * - a `true` within TYPING_MIN_INTERVAL_MS of the last `true` passed on is dropped, so a client
 *   flipping true/false passes at most one start and one stop per interval (before, 500
 *   alternating frames fanned out 500 times).
 * Memory only, like the indicator; bounded: stale users are forgotten when the map grows.
 */
export const TYPING_MIN_INTERVAL_MS = 3_000;
/** A `true` repeated this long after the last one passed on is a keep-alive and goes out. */
export const TYPING_REFRESH_MS = 3_000;
/** Users remembered before stale entries are swept. */
const MAX_TRACKED = 1_000;

interface Last { isTyping: boolean; at: number; trueAt: number }

export class TypingGuard {
  private readonly last = new Map<string, Last>();

  /** Whether `userId`'s indicator should go out now; records it if so. */
  pass(userId: string, isTyping: boolean, now: number): boolean {
    const last = this.last.get(userId);
    if (last) {
      if (isTyping) {
        if (now - last.trueAt < TYPING_MIN_INTERVAL_MS) return false;
      } else if (!last.isTyping) {
        return false; // already stopped
      }
    } else if (!isTyping) {
      return false; // never started: nothing to stop
    }
    this.last.set(userId, { isTyping, at: now, trueAt: isTyping ? now : last!.trueAt });
    if (this.last.size > MAX_TRACKED) this.sweep(now);
    return true;
  }

  private sweep(now: number): void {
    for (const [userId, l] of this.last) if (now - l.at > 2 * TYPING_MIN_INTERVAL_MS) this.last.delete(userId);
  }
}
