/**
 * A flush asked for without a storage write. Setting the object's alarm is a write, and in the
 * turn of a delivery or an ack its commit holds every frame the object sends after it (output
 * gate). What a connected device's traffic leaves in memory (the channel list's rows under the
 * sockets' cover, decision 035; the devices' acks) is flushed on a timer instead: the object is
 * awake anyway, and a pending timer keeps it from hibernating before the flush. If the instance
 * goes regardless, what it held is re-read (the list) or repeated (acks), never wrong.
 *
 * The timer fires at the first time asked and looks again when the flush has moved later.
 */
export class FlushTimer {
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** @param due when the flush is due now (undefined: nothing to flush) @param flush does it */
  constructor(private readonly due: () => number | undefined, private readonly flush: () => void) {}

  /** Makes sure the flush runs by `at` (or when `due()` says, if that moved later). */
  askBy(at: number): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const due = this.due();
      if (due === undefined) return;
      if (due <= Date.now()) this.flush();
      else this.askBy(due);
    }, Math.max(0, at - Date.now()));
  }
}
