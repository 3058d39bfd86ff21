/** The unmeasured warm-up every target gets before the first scenario. */
import { runSender, type SenderPattern } from "../load/sender.js";
import type { Target } from "../load/target.js";
import { Tracker } from "../load/tracker.js";
import { PRIMARY_DEVICE } from "./scenario.js";

/**
 * A few hundred messages on a throwaway channel before anything is measured, so the first
 * scenario does not pay for JIT warm-up, bundling and the first object instantiations.
 */
export async function warmUp(target: Target, pattern: SenderPattern): Promise<void> {
  const [a, b] = [await target.freshUser("warm"), await target.freshUser("warm")];
  const channel = await target.createDm(a, b);
  const tracker = new Tracker();
  const sender = await target.connect(a, PRIMARY_DEVICE, [channel], tracker);
  const receiver = await target.connect(b, PRIMARY_DEVICE, [channel], tracker);
  const deadline = performance.now() + 20_000;
  await runSender({ device: sender, channelId: channel, count: 500, recipients: [receiver.key], idPrefix: `warm-${target.name}-${Date.now().toString(36)}` }, pattern, tracker, deadline);
  await tracker.whenIdle(Math.max(0, deadline - performance.now()));
  await Promise.all([sender.close(), receiver.close()]);
}

