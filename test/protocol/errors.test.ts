/** The error code list both sides import: retry flags and HTTP statuses, as the server applies them. */
import { describe, expect, it } from "vitest";
import { ERROR_CODES, type ErrorCode } from "../../protocol/errors.js";
import { errorBody, fail, httpStatus } from "../../shared/errors.js";

const codes = Object.keys(ERROR_CODES) as ErrorCode[];

describe("error codes", () => {
  it("marks only transient failures as retryable", () => {
    expect(codes.filter((c) => ERROR_CODES[c].retryable).sort()).toEqual(["internal", "rate_limited", "unavailable"]);
    for (const c of codes) expect(fail(c, "x").retryable).toBe(ERROR_CODES[c].retryable);
  });

  it("gives every code a 4xx or 5xx status and a REST body that carries the backoff hint only when there is one", () => {
    for (const c of codes) expect(httpStatus(c)).toBeGreaterThanOrEqual(400);
    expect(httpStatus("not_member")).toBe(403);
    expect(httpStatus("rate_limited")).toBe(429);
    expect(errorBody(fail("not_found", "gone"))).toEqual({ code: "not_found", message: "gone", retryable: false });
    expect(errorBody(fail("rate_limited", "slow", 250))).toEqual({ code: "rate_limited", message: "slow", retryable: true, backoff_hint_ms: 250 });
  });
});
