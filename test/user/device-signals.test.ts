/**
 * DeviceSignals on its own (durable-objects/user/socket-protocol.ts) over a fresh object's sockets:
 * typing, read receipts and presence reach every device; under pressure typing and presence are
 * shed and counted, read receipts still go out.
 */
import { describe, expect, it } from "vitest";
import { decodeFrame, pb, type Frame } from "../../protocol/codec.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { acceptDevice, DeviceSignals } from "../../durable-objects/user/socket-protocol.js";
import { inFreshUser } from "../helpers/object-sql.js";

const C = "c_g_00000000000000000000000000";

describe("DeviceSignals", () => {
  it("sends typing, reads and presence to every device, and sheds typing and presence under pressure", async () => {
    await inFreshUser(async (_sql, ctx) => {
      const received = ["phone", "laptop"].map((deviceId) => {
        const ws = acceptDevice(ctx, { user_id: "u_me", username: "me" }, deviceId, "", "json", undefined);
        const frames: Frame[] = [];
        ws.addEventListener("message", (e) => {
          const d = decodeFrame(e.data as string, "json");
          if (d.ok && d.frame.type !== pb.FrameType.HELLO) frames.push(d.frame);
        });
        ws.accept();
        return frames;
      });
      let pressure = false;
      const signals = new DeviceSignals(ctx, () => pressure);
      const seen = memoryRecorder();
      const restore = recordMetricsWith(seen);
      try {
        signals.signal({ kind: "typing", channel_id: C, user_id: "u_bob", device_id: "d", is_typing: true });
        pressure = true;
        signals.signal({ kind: "typing", channel_id: C, user_id: "u_bob", device_id: "d", is_typing: false });
        signals.presence({ user_id: "u_bob", status: "online", last_seen: 1 });
        signals.signal({ kind: "read", channel_id: C, user_id: "u_bob", up_to_seq: 7 });
        // The read receipt, sent last, proves the shed frames are not merely late.
        for (const frames of received) {
          await expect.poll(() => frames.length, { timeout: 10_000 }).toBe(2);
          expect(frames.map((f) => pb.FrameType[f.type])).toEqual(["TYPING", "READ"]);
          expect(frames[0]!.typing).toMatchObject({ channel_id: C, user_id: "u_bob", is_typing: true });
          expect(frames[1]!.read).toMatchObject({ channel_id: C, user_id: "u_bob", up_to_seq: 7 });
        }
        expect(seen.points.filter((p) => p.name === "overload.dropped").map((p) => p.tags?.kind)).toEqual(["typing", "presence"]);
      } finally {
        restore();
      }
    });
  });
});
