/**
 * "Something changed" for socket wrappers in tests: wake everyone waiting, or wait until woken or
 * a timeout passes. Explicit timeouts everywhere, never a test that hangs.
 */
export class Waiters {
  private waiting: (() => void)[] = [];

  wake(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const f of w) f();
  }

  /** Resolves true when woken, false when `timeoutMs` passes first. */
  wait(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.waiting.push(() => { clearTimeout(t); resolve(true); });
    });
  }
}
