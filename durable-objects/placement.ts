/**
 * Every Durable Object checks that it runs where its data belongs (shared/locality.ts,
 * `checkPlacement`). One instance per object: it knows the jurisdiction the object was reached in
 * and, once the object found its stored jurisdiction differs, makes every later call refuse with
 * `misplaced` (a logged error, never data served from the wrong place).
 *
 * Use in an object class (the RelayObject does the same):
 *
 *   this.placement = new Placement(ctx, env, "relay");
 *   // on wake, once the stored jurisdiction is read:
 *   if (!this.placement.verify(this, storedJurisdiction, storedId)) return;
 *   // per call, for ids the object is asked to hold:
 *   const refused = this.placement.admit(jurisdictionOf(userId), userId);
 *
 * and once, after the class: `refuseWhenMisplaced(RelayObject)`.
 */
import type { Failure } from "../shared/errors.js";
import { type Jurisdiction } from "../shared/ids.js";
import { checkPlacement, reachedJurisdiction } from "../shared/locality.js";
import { log } from "../shared/log.js";

/** Thrown by every call into a misplaced object; `code` and `retryable` cross RPC with it. */
export class MisplacedError extends Error {
  override readonly name = "MisplacedError";
  readonly code = "misplaced";
  readonly retryable = false;
  constructor(readonly failure: Failure) {
    super(failure.message);
  }
}

/** Objects found misplaced on wake; every wrapped method of theirs refuses. */
const misplaced = new WeakMap<object, Failure>();

export class Placement {
  /** Where this instance was reached (undefined: its id does not say). */
  readonly reached: Jurisdiction | undefined;
  private readonly objectId: string;

  constructor(ctx: DurableObjectState, env: { JURISDICTIONS?: string }, private readonly object: string) {
    this.reached = reachedJurisdiction(env, ctx.id);
    this.objectId = ctx.id.name ?? ctx.id.toString();
  }

  /**
   * Checks the jurisdiction the object stored against where it was reached. On a mismatch it logs,
   * marks `self` so that every later call refuses, and answers false: stop loading.
   */
  verify(self: object, stored: string, storedId: string): boolean {
    const refused = this.admit(stored, storedId);
    if (!refused) return true;
    misplaced.set(self, refused);
    return false;
  }

  /**
   * One call's check, for something that belongs in `jurisdiction` (an id's, an input's) against
   * where this object was reached (or `against`): logged when refused.
   */
  admit(jurisdiction: string, id: string, against: Jurisdiction | undefined = this.reached): Failure | undefined {
    const refused = checkPlacement(jurisdiction, against);
    if (refused) {
      log("error", "placement.mismatch", { object: this.object, id: this.objectId, subject: id, stored: jurisdiction, reached: against });
    }
    return refused;
  }

  /** `admit` for calls that answer no Result: throws the refusal instead. */
  require(jurisdiction: string, id: string, against: Jurisdiction | undefined = this.reached): void {
    const refused = this.admit(jurisdiction, id, against);
    if (refused) throw new MisplacedError(refused);
  }
}

/** The refusal of an object `verify` marked, if it was. */
export function misplacement(self: object): Failure | undefined {
  return misplaced.get(self);
}

/**
 * Wraps every method the class defines (RPC methods, fetch, alarm, WebSocket handlers) so that
 * none runs in an instance `verify` marked: each throws a MisplacedError instead. Synchronous
 * methods stay synchronous, so the send path keeps its no-`await` rule.
 */
export function refuseWhenMisplaced(cls: { prototype: object }): void {
  const proto = cls.prototype as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(proto)) {
    if (name === "constructor") continue;
    const descriptor = Object.getOwnPropertyDescriptor(proto, name);
    if (!descriptor || typeof descriptor.value !== "function") continue;
    const method = descriptor.value as (...args: unknown[]) => unknown;
    Object.defineProperty(proto, name, {
      ...descriptor,
      value: {
        [name](this: object, ...args: unknown[]): unknown {
          const refused = misplaced.get(this);
          if (refused) throw new MisplacedError(refused);
          return method.apply(this, args);
        },
      }[name],
    });
  }
}
