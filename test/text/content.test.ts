/**
 * The ChannelObject's own content checks refuse text that is not well-formed too: the edges
 * (frame decoder, REST parser) refuse it first, but every path that stores text ends here.
 */
import { describe, expect, it } from "vitest";
import { validateClientContent, validEmoji } from "../../durable-objects/channel/content.js";

describe("stored content is well-formed", () => {
  it("refuses message text with a lone surrogate as invalid_text", () => {
    const r = validateClientContent({ text: { text: "hi \ud800" } });
    expect(r.ok || [r.code, r.retryable]).toEqual(["invalid_text", false]);
    expect(validateClientContent({ text: { text: "hi 😀 \uffff" } }).ok).toBe(true);
  });

  it("takes no reaction with a lone surrogate", () => {
    expect(validEmoji("\ud83d")).toBe(false);
    expect(validEmoji("\ude00\ud83d")).toBe(false);
    expect(validEmoji("👍🏽")).toBe(true);
  });
});
