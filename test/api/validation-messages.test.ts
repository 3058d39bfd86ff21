/**
 * Bad REST bodies and queries get a message that says which field and what is wrong. Pinned here
 * so a change of validation library (or of its settings) cannot make them vaguer.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createGroup, register, type TestUser } from "../helpers/api.js";

let alice: TestUser;
let group: string;

beforeAll(async () => {
  alice = await register("alice");
  group = await createGroup(alice, [], "G");
});

describe("REST validation messages", () => {
  it("name the field and what is wrong", async () => {
    const cases: [string, string, unknown, boolean, string][] = [
      ["POST", "/v1/auth/register", {}, false, "username: Invalid input: expected string, received undefined"],
      ["POST", "/v1/auth/register", { username: "ab", password: "12345678" }, false, "username: 3-32 characters of letters, digits, _ . -"],
      ["POST", "/v1/auth/register", { username: "abc", password: "short" }, false, "password: at least 8 characters"],
      ["POST", "/v1/auth/register", { username: "abcd", password: "x".repeat(201) }, false, "password: Too big: expected string to have <=200 characters"],
      ["POST", "/v1/auth/register", { username: 5, password: "12345678" }, false, "username: Invalid input: expected string, received number"],
      ["POST", "/v1/auth/register", { username: "abcd", password: "12345678", display_name: "x".repeat(65) }, false, "display_name: Too big: expected string to have <=64 characters"],
      ["POST", "/v1/auth/register", { username: "abcd", password: "12345678", jurisdiction: "us" }, false, 'jurisdiction: Invalid option: expected one of ""|"eu"|"fedramp"'],
      ["POST", "/v1/auth/register", [], false, "Invalid input: expected object, received array"],
      ["POST", "/v1/auth/login", { username: "", password: "x" }, false, "username: Too small: expected string to have >=1 characters"],
      ["POST", "/v1/auth/refresh", {}, false, "refresh_token: Invalid input: expected string, received undefined"],
      ["POST", "/v1/channels", { type: "x" }, true, "type: Invalid discriminator value. Expected 'dm' | 'group' | 'broadcast'"],
      ["POST", "/v1/channels", { type: "dm" }, true, "member: Invalid input: expected string, received undefined"],
      ["POST", "/v1/channels", { type: "group", name: "n", members: "bob" }, true, "members: Invalid input: expected array, received string"],
      ["POST", "/v1/channels", { type: "group", name: "n", members: [""] }, true, "members.0: Too small: expected string to have >=1 characters"],
      ["POST", "/v1/channels", { type: "group", name: "x".repeat(101) }, true, "name: Too big: expected string to have <=100 characters"],
      ["POST", `/v1/channels/${"{id}"}/members`, { members: [] }, true, "members: Too small: expected array to have >=1 items"],
      ["POST", `/v1/channels/${"{id}"}/read`, { up_to_seq: -1 }, true, "up_to_seq: Too small: expected number to be >=0"],
      ["POST", `/v1/channels/${"{id}"}/read`, { up_to_seq: 1.5 }, true, "up_to_seq: Invalid input: expected int, received number"],
      ["PATCH", `/v1/channels/${"{id}"}/messages/1`, { text: "" }, true, "text: Too small: expected string to have >=1 characters"],
      ["GET", `/v1/channels/${"{id}"}/messages?limit=0`, undefined, true, "limit: Too small: expected number to be >=1"],
      ["GET", `/v1/channels/${"{id}"}/messages?before=x`, undefined, true, "before: Invalid input: expected number, received NaN"],
      ["DELETE", `/v1/channels/${"{id}"}/messages/1?for=all`, undefined, true, 'for: Invalid option: expected one of "me"|"everyone"'],
      ["POST", "/v1/devices", { device_id: "bad id" }, true, "device_id: 1-64 characters of A-Z a-z 0-9 _ -"],
      ["POST", "/v1/devices", { device_id: "ok", platform: 3 }, true, "platform: Invalid input: expected string, received number"],
      ["PATCH", "/v1/me/settings", { read_receipts: "yes" }, true, "read_receipts: Invalid input: expected boolean, received string"],
      ["PATCH", "/v1/me/settings", { other: true }, true, 'Unrecognized key: "other"'],
    ];
    for (const [method, path, body, auth, message] of cases) {
      const r = await call(method, path.replace("{id}", group), { ...(auth ? { token: alice.access_token } : {}), ...(body === undefined ? {} : { body }) });
      expect([method, path, r.status, r.body.code, r.body.message]).toEqual([method, path, 400, "invalid_argument", message]);
    }
  });
});
