/**
 * Frame codec: one schema, two encodings (binary protobuf, JSON text), chosen per connection by
 * WebSocket subprotocol. Used by the server and the client SDK alike.
 *
 * @example
 * const frame = decodeFrame(data, "proto");
 * if (!frame.ok) return sendError(frame.code, frame.message);
 */
import $protobuf from "protobufjs/minimal.js";
import { edgechat } from "./generated/chat.js";
import { LIMITS, type Encoding } from "./limits.js";
import { describeLoneSurrogate, findStrings, illFormedPaths, truncate, wellFormedDeep, type TextPath } from "./text.js";

export const pb = edgechat.v1;
export type Frame = edgechat.v1.Frame;
export type FrameInit = edgechat.v1.Frame.$Properties;
export type FrameType = edgechat.v1.FrameType;
export type FrameTypeName = keyof typeof edgechat.v1.FrameType;
export type PayloadField = NonNullable<edgechat.v1.Frame["payload"]>;
export type { Encoding };

export type DecodeResult =
  | { ok: true; frame: Frame }
  | { ok: false; code: "malformed_frame" | "frame_too_large" | "unknown_frame_type"; message: string; requestId: number }
  | InvalidText;

/**
 * A frame that decodes but holds text that is not well-formed (a lone surrogate in JSON, bytes
 * that are not UTF-8 in protobuf). `repaired` is the frame with that text replaced by U+FFFD:
 * the server refuses the frame (and answers with its request_id), the SDK uses it and reports
 * `paths`, so one bad message never costs the others in its frame.
 */
export interface InvalidText {
  ok: false;
  code: "invalid_text";
  message: string;
  requestId: number;
  repaired: Frame;
  /** Fields that held the bad text: `deliver.messages.2.content.text.text`. */
  paths: string[];
}

const typeNames = pb.FrameType as unknown as Record<string, number | string>;

/** Each frame type's payload field, worked out once (every frame in and out asks). */
const payloadFields = new Map<number, PayloadField>(
  Object.entries(typeNames).filter(([, n]) => typeof n === "number" && n !== 0).map(([name, n]) => [n as number, name.toLowerCase() as PayloadField]),
);

/** The oneof field that carries a frame type's payload: SEND_ACK -> send_ack. */
export function payloadField(type: number): PayloadField | undefined {
  return payloadFields.get(type);
}

export function frameTypeName(type: number): string {
  const name = typeNames[type];
  return typeof name === "string" ? name : `UNKNOWN(${type})`;
}

function byteLength(data: ArrayBuffer | ArrayBufferView | string): number {
  return typeof data === "string" ? utf8Length(data) : data.byteLength;
}

/** UTF-8 length without allocating; exact for well-formed strings. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) { n += 4; i++; }
    else n += 3;
  }
  return n;
}

/** Decodes one WebSocket message. Never throws: bad input comes back as a value. */
export function decodeFrame(data: ArrayBuffer | ArrayBufferView | string, encoding: Encoding): DecodeResult {
  if (byteLength(data) > LIMITS.maxFrameBytes) {
    return { ok: false, code: "frame_too_large", message: `Frames are limited to ${LIMITS.maxFrameBytes} bytes.`, requestId: 0 };
  }
  if (encoding === "proto") {
    if (typeof data === "string") {
      return { ok: false, code: "malformed_frame", message: "This connection speaks binary protobuf frames; got a text frame.", requestId: 0 };
    }
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let frame: Frame;
    try {
      frame = pb.Frame.decode(bytes);
    } catch (err) {
      const lenient = decodeLenient(bytes);
      if (lenient) {
        const checked = checkPayload(lenient.frame);
        return checked.ok ? invalidText(checked.frame, lenient.bad) : checked;
      }
      return { ok: false, code: "malformed_frame", message: `Not a valid protobuf Frame: ${errorText(err)}`, requestId: 0 };
    }
    return checkPayload(frame);
  }
  let text: string;
  let notUtf8 = false;
  if (typeof data === "string") text = data;
  else {
    try {
      text = strictUtf8.decode(data);
    } catch {
      text = new TextDecoder().decode(data);
      notUtf8 = true;
    }
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, code: "malformed_frame", message: "Not valid JSON.", requestId: 0 };
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { ok: false, code: "malformed_frame", message: "A frame is a JSON object {type, request_id, payload}.", requestId: 0 };
  }
  const obj = raw as Record<string, unknown>;
  const requestId = typeof obj.request_id === "number" && Number.isInteger(obj.request_id) && obj.request_id >= 0 && obj.request_id <= 0xffffffff ? obj.request_id : 0;
  if (obj.request_id !== undefined && requestId !== obj.request_id) {
    return { ok: false, code: "malformed_frame", message: "request_id must be an integer from 0 to 2^32-1.", requestId: 0 };
  }
  if (typeof obj.type !== "string") {
    return { ok: false, code: "malformed_frame", message: "type must be a frame type name such as \"SEND\".", requestId };
  }
  const type = typeNames[obj.type];
  if (typeof type !== "number" || type === 0) {
    return { ok: false, code: "unknown_frame_type", message: `Unknown frame type "${wellFormedDeep(truncate(obj.type, 40))}".`, requestId };
  }
  const payload = obj.payload ?? {};
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    return { ok: false, code: "malformed_frame", message: "payload must be an object.", requestId };
  }
  const field = payloadField(type)!;
  let frame: Frame;
  try {
    frame = pb.Frame.fromObject({ type, request_id: requestId, [field]: payload });
  } catch (err) {
    return { ok: false, code: "malformed_frame", message: `Bad ${obj.type} payload: ${errorText(err)}`, requestId };
  }
  const checked = checkPayload(frame);
  if (!checked.ok) return checked;
  const bad = illFormedPaths(frame);
  if (bad.length === 0 && !notUtf8) return checked;
  const repaired = bad.length === 0 ? frame : pb.Frame.fromObject({ type, request_id: requestId, [field]: wellFormedDeep(payload) });
  return invalidText(repaired, bad);
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * A protobuf reader whose strings fall back from strict UTF-8 to a lenient decode (U+FFFD for
 * what is not UTF-8) instead of failing; `repaired` hears of each string that needed it. The
 * generated decoders read every string field through stringVerify (proto3 UTF-8 validation).
 */
export function lenientReader(bytes: Uint8Array, repaired?: (s: string) => void): $protobuf.Reader {
  const reader = $protobuf.Reader.create(bytes);
  const strict = $protobuf.Reader.prototype.stringVerify;
  const loose = $protobuf.Reader.prototype.string;
  reader.stringVerify = function (this: $protobuf.Reader): string {
    const start = this.pos;
    try {
      return strict.call(this);
    } catch {
      this.pos = start;
      const s = loose.call(this);
      repaired?.(s);
      return s;
    }
  };
  return reader;
}

/**
 * Decodes a protobuf frame whose strict decode failed, reading strings that are not UTF-8 with
 * U+FFFD instead of failing. Undefined when it fails anyway (the frame is broken otherwise) or
 * when no string was at fault.
 */
function decodeLenient(bytes: Uint8Array): { frame: Frame; bad: TextPath[] } | undefined {
  const repairedStrings = new Set<string>();
  const reader = lenientReader(bytes, (s) => repairedStrings.add(s));
  let frame: Frame;
  try {
    frame = pb.Frame.decode(reader);
  } catch {
    return undefined;
  }
  if (repairedStrings.size === 0) return undefined;
  const bad = findStrings(frame, (s) => repairedStrings.has(s));
  return { frame, bad: bad.length > 0 ? bad : [{ path: "(a string field)", value: "" }] };
}

function invalidText(repaired: Frame, bad: TextPath[]): InvalidText {
  const first = bad[0];
  const where = first ? `${first.path} holds ${describeLoneSurrogate(first.value)}` : "the frame is not UTF-8";
  const more = bad.length > 1 ? ` (and ${bad.length - 1} more field${bad.length > 2 ? "s" : ""})` : "";
  return {
    ok: false, code: "invalid_text", requestId: repaired.request_id, repaired, paths: bad.map((b) => b.path),
    message: `Text must be well-formed Unicode: ${where}${more}.`,
  };
}

function checkPayload(frame: Frame): DecodeResult {
  const field = payloadField(frame.type);
  if (!field) {
    return { ok: false, code: "unknown_frame_type", message: `Unknown frame type ${frame.type}.`, requestId: frame.request_id };
  }
  if (frame.payload !== undefined && frame.payload !== field) {
    return { ok: false, code: "malformed_frame", message: `A ${frameTypeName(frame.type)} frame cannot carry a ${frame.payload} payload.`, requestId: frame.request_id };
  }
  const verifyError = pb.Frame.verify(frame);
  if (verifyError) {
    return { ok: false, code: "malformed_frame", message: verifyError, requestId: frame.request_id };
  }
  return { ok: true, frame };
}

/** Encodes a frame for the wire: bytes for proto connections, a JSON string otherwise. */
export function encodeFrame(init: FrameInit, encoding: Encoding): Uint8Array | string {
  if (encoding === "proto") return pb.Frame.encode(init).finish();
  const type = init.type ?? 0;
  const field = payloadField(type);
  const frame = pb.Frame.fromObject(init);
  const obj = pb.Frame.toObject(frame, { enums: String, longs: Number, bytes: String, defaults: false, oneofs: false });
  return JSON.stringify({ type: frameTypeName(type), request_id: init.request_id ?? 0, payload: field ? obj[field] ?? {} : {} });
}

/** Converts a payload message to the plain JSON shape used by the REST API. */
export function toJson<T extends { constructor: unknown }>(type: { toObject(m: T, o: object): Record<string, unknown> }, message: T): Record<string, unknown> {
  return type.toObject(message, { enums: String, longs: Number, bytes: String, defaults: false });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
