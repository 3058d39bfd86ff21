/** Shared by the text tests: strings that exercise every way a JS string can be odd. */
import fc from "fast-check";

/** Any JS string: lone surrogates, halves of pairs, noncharacters, astral code points, graphemes. */
export const anyText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "binary-ascii", maxLength: 20 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: "grapheme-composite", maxLength: 10 }),
  fc.string({ unit: fc.constantFrom("\ud800", "\udbff", "\udc00", "\udfff", "\ud83d", "\ude00", "😀", "\uffff", "\ufffe", "\ufdd0", "\u{10ffff}", "\u{10fffe}", "\u0000", "a"), maxLength: 8 }),
);

/**
 * JSON text of a value, for assertions: JSON.stringify writes a lone surrogate as an ASCII escape,
 * and a failure message that carried a raw one could not cross the test pool's own socket.
 */
export const j = (v: unknown): string => JSON.stringify(v) ?? "undefined";
