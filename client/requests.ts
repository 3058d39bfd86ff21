/**
 * Requests in flight on the socket, keyed by request_id. The server echoes request_id in the
 * answer (SEND_ACK, HISTORY_PAGE, ERROR, ...). Every request ends exactly once: answered, failed,
 * timed out, or dropped with the socket; the timer is always cleared.
 */
import type { Frame } from "../protocol/codec.js";
import type { EdgechatError } from "./errors.js";
import type { Scheduler } from "./types.js";

export interface RequestHandlers {
  /** A frame answering the request (echoed request_id, or `matches` said so). */
  answer(frame: Frame): void;
  /** ERROR with this request_id. */
  error(err: EdgechatError): void;
  /** No answer in time. */
  timeout(): void;
  /** The socket closed first. */
  dropped(): void;
  /** Frames that answer the request without echoing its id (e.g. the READ echo for markRead). */
  matches?: (frame: Frame) => boolean;
}

interface Pending extends RequestHandlers {
  timer: unknown;
}

export class Requests {
  private nextRequestId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly scheduler: Scheduler) {}

  /** A fresh request_id: uint32, never 0 (0 means "not a request"). */
  nextId(): number {
    const id = this.nextRequestId;
    this.nextRequestId = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  track(requestId: number, timeoutMs: number, handlers: RequestHandlers): void {
    const timer = this.scheduler.setTimeout(() => {
      if (this.pending.delete(requestId)) handlers.timeout();
    }, timeoutMs);
    this.pending.set(requestId, { ...handlers, timer });
  }

  has(requestId: number): boolean {
    return this.pending.has(requestId);
  }

  private take(requestId: number): Pending | undefined {
    const p = this.pending.get(requestId);
    if (!p) return undefined;
    this.pending.delete(requestId);
    this.scheduler.clearTimeout(p.timer);
    return p;
  }

  /** Settles the request this frame answers, by request_id or by a matcher. */
  answer(frame: Frame): boolean {
    if (frame.request_id !== 0) {
      const p = this.take(frame.request_id);
      if (p) {
        p.answer(frame);
        return true;
      }
    }
    let settled = false;
    for (const [id, p] of [...this.pending]) {
      if (p.matches?.(frame)) {
        this.take(id);
        p.answer(frame);
        settled = true;
      }
    }
    return settled;
  }

  /** Forgets a request answered some other way (e.g. a SEND_ACK matched by client_msg_id). */
  cancel(requestId: number): void {
    this.take(requestId);
  }

  fail(requestId: number, err: EdgechatError): boolean {
    const p = this.take(requestId);
    if (!p) return false;
    p.error(err);
    return true;
  }

  /** The socket closed: every pending request is told, then forgotten. */
  dropAll(): void {
    const all = [...this.pending.keys()];
    for (const id of all) this.take(id)?.dropped();
  }
}
