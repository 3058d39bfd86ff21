/**
 * Drain (docs/operations.md, "Draining connections"): an operator asks every connected device to
 * reconnect at a random moment within a window, so a fleet of sockets moves over gradually instead
 * of all at once. Each socket gets GOAWAY {reconnect_after_ms}; the SDK keeps using it until then,
 * reconnects, and RESUMEs, so nothing is lost and no one waits offline.
 */
import { pb } from "../../protocol/codec.js";
import { sendFrame } from "../../shared/frames.js";
import { openSockets, socketInfo } from "./socket-protocol.js";

/** Sends GOAWAY to every open socket, each with its own delay in [0, windowMs); returns how many. */
export function goAwayAll(ctx: DurableObjectState, windowMs: number, random: () => number = Math.random): number {
  let asked = 0;
  for (const ws of openSockets(ctx)) {
    const reconnect_after_ms = Math.floor(random() * Math.max(0, windowMs));
    if (sendFrame(ws, { type: pb.FrameType.GOAWAY, goaway: { reconnect_after_ms, reason: "drain" } }, socketInfo(ws).encoding)) asked++;
  }
  return asked;
}
