/**
 * Loopback stand-ins for the push providers, checking every request for real (Node side only):
 * - Web Push: verifies the VAPID JWT (ES256) against the configured public key, its audience and
 *   expiry, and decrypts the RFC 8291 aes128gcm body with the subscription's private key (http_ece).
 * - FCM: verifies the service account's RS256 assertion at the token endpoint, then the bearer token
 *   and the v1 message at messages:send.
 * - APNs: verifies the ES256 provider JWT (kid, iss), apns-topic, apns-push-type, apns-collapse-id.
 * Each target answers from a script (e.g. [500, 200] then 200 forever, or [410]); everything it
 * accepted or refused is recorded. Tests in workerd reach the same records over HTTP (/__records).
 *
 * @example
 * const fake = await startFakePush(devPushKeys());
 * const sub = fake.webPushSubscription("phone");     // {type:"webpush", endpoint, keys}
 * fake.script("phone", [500, 201]);
 * await fake.waitFor((r) => r.target === "phone" && r.status === 201);
 */
import { createECDH, createPublicKey, randomBytes, type ECDH, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { join } from "node:path";
import { decodeProtectedHeader, importJWK, jwtVerify } from "jose";
// http_ece has no types; it is the reference implementation web-push itself uses.
// @ts-expect-error untyped CommonJS module
import ece from "http_ece";

const root = new URL("../../", import.meta.url).pathname;

/** The throwaway development keys in .dev.vars.example, as the Worker gets them. */
export interface PushKeys {
  VAPID_PUBLIC_KEY: string;
  VAPID_PRIVATE_KEY: string;
  FCM_SERVICE_ACCOUNT: string;
  APNS_PRIVATE_KEY: string;
  APNS_KEY_ID: string;
  APNS_TEAM_ID: string;
}

/** Reads the push keys from .dev.vars.example (dotenv: single quotes literal, double quotes expand \n). */
export function devPushKeys(): PushKeys {
  const text = readFileSync(join(root, ".dev.vars.example"), "utf8");
  const vars: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^([A-Z0-9_]+)=(.*)$/);
    if (!m) continue;
    let v = m[2]!;
    if (v.startsWith("'") && v.endsWith("'")) v = v.slice(1, -1);
    else if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1).replace(/\\n/g, "\n");
    vars[m[1]!] = v;
  }
  const keys = ["VAPID_PUBLIC_KEY", "VAPID_PRIVATE_KEY", "FCM_SERVICE_ACCOUNT", "APNS_PRIVATE_KEY", "APNS_KEY_ID", "APNS_TEAM_ID"] as const;
  for (const k of keys) if (!vars[k]) throw new Error(`.dev.vars.example lacks ${k}`);
  return Object.fromEntries(keys.map((k) => [k, vars[k]!])) as unknown as PushKeys;
}

export interface PushRecord {
  provider: "webpush" | "fcm" | "apns";
  /** The subscription name (Web Push), FCM token or APNs device token. */
  target: string;
  /** What the fake answered. */
  status: number;
  /** The decrypted / parsed payload (the edgechat PushPayload), when the request checked out. */
  payload?: Record<string, unknown>;
  /** Topic / collapse_key / apns-collapse-id. */
  collapseKey?: string;
  headers: Record<string, string>;
  /** Why the fake refused it (a failed check), if it did. */
  error?: string;
  at: number;
}

interface WebPushTarget {
  ecdh: ECDH;
  auth: Buffer;
}

export interface FakePush {
  url: string;
  port: number;
  records: PushRecord[];
  /** Vars pointing the Worker's FCM and APNs base URLs at this server. */
  baseUrls: { FCM_API_BASE_URL: string; FCM_TOKEN_URL: string; APNS_BASE_URL: string; APNS_SANDBOX_BASE_URL: string };
  tokenRequests: number;
  /** A new browser subscription at this fake push service. */
  webPushSubscription(name: string): { type: "webpush"; endpoint: string; keys: { p256dh: string; auth: string } };
  /** Statuses to answer for `target`, in order; after the last, 201 (Web Push) / 200. */
  script(target: string, statuses: number[]): void;
  waitFor(match: (r: PushRecord) => boolean, timeoutMs?: number): Promise<PushRecord>;
  close(): Promise<void>;
}

export async function startFakePush(keys: PushKeys): Promise<FakePush> {
  const vapidPub = Buffer.from(keys.VAPID_PUBLIC_KEY, "base64url");
  const vapidKey = await importJWK({ kty: "EC", crv: "P-256", x: vapidPub.subarray(1, 33).toString("base64url"), y: vapidPub.subarray(33, 65).toString("base64url") }, "ES256");
  const sa = JSON.parse(keys.FCM_SERVICE_ACCOUNT) as { client_email: string; private_key: string; project_id: string };
  const fcmKey: KeyObject = createPublicKey(sa.private_key);
  const apnsKey: KeyObject = createPublicKey(keys.APNS_PRIVATE_KEY);
  const targets = new Map<string, WebPushTarget>();
  const scripts = new Map<string, number[]>();
  const accessTokens = new Set<string>();
  const verifiedVapid = new Map<string, number>();
  const records: PushRecord[] = [];
  const waiters: { match: (r: PushRecord) => boolean; resolve: (r: PushRecord) => void }[] = [];
  let port = 0;

  const record = (r: Omit<PushRecord, "at">) => {
    const full = { ...r, at: Date.now() };
    records.push(full);
    for (const w of [...waiters]) if (w.match(full)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(full); }
  };
  const nextStatus = (target: string, ok: number) => scripts.get(target)?.shift() ?? ok;
  const headersOf = (req: IncomingMessage) => Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));

  async function webPush(req: IncomingMessage, body: Buffer, name: string): Promise<[number, string]> {
    const headers = headersOf(req);
    const refuse = (status: number, error: string): [number, string] => {
      record({ provider: "webpush", target: name, status, headers, error });
      return [status, error];
    };
    const target = targets.get(name);
    if (!target) return refuse(410, "no such subscription");
    const auth = headers.authorization?.match(/^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/);
    if (!auth) return refuse(401, "authorization is not `vapid t=…, k=…`");
    if (auth[2] !== keys.VAPID_PUBLIC_KEY) return refuse(403, "k is not the configured VAPID public key");
    // A token's signature is verified once (the Worker reuses it for hours); its expiry every time.
    let exp = verifiedVapid.get(auth[1]!);
    if (exp === undefined) {
      try {
        const { payload: claims, protectedHeader } = await jwtVerify(auth[1]!, vapidKey, { audience: `http://127.0.0.1:${port}`, algorithms: ["ES256"] });
        if (protectedHeader.typ !== "JWT") return refuse(401, "VAPID JWT typ");
        if (typeof claims.exp !== "number" || claims.exp > Date.now() / 1000 + 24 * 3600) return refuse(401, "VAPID exp more than 24 h ahead");
        if (typeof claims.sub !== "string" || !/^(mailto:|https:)/.test(claims.sub)) return refuse(401, "VAPID sub");
        exp = claims.exp;
        verifiedVapid.set(auth[1]!, exp);
      } catch (err) {
        return refuse(401, `VAPID JWT: ${String(err)}`);
      }
    }
    if (exp <= Date.now() / 1000) return refuse(401, "VAPID JWT expired");
    if (headers["content-encoding"] !== "aes128gcm") return refuse(415, "content-encoding must be aes128gcm");
    if (!/^\d+$/.test(headers.ttl ?? "")) return refuse(400, "TTL header missing");
    const topic = headers.topic;
    if (topic !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(topic)) return refuse(400, "Topic must be ≤ 32 base64url characters");
    let payload: Record<string, unknown>;
    try {
      const plain: Buffer = ece.decrypt(body, { version: "aes128gcm", privateKey: target.ecdh, authSecret: target.auth.toString("base64url") });
      payload = JSON.parse(plain.toString("utf8")) as Record<string, unknown>;
    } catch (err) {
      return refuse(400, `decrypt: ${String(err)}`);
    }
    const status = nextStatus(name, 201);
    record({ provider: "webpush", target: name, status, payload, collapseKey: topic, headers });
    return [status, ""];
  }

  async function fcmToken(req: IncomingMessage, body: Buffer): Promise<[number, string]> {
    const form = new URLSearchParams(body.toString("utf8"));
    if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") return [400, JSON.stringify({ error: "unsupported_grant_type" })];
    try {
      const { payload } = await jwtVerify(form.get("assertion") ?? "", fcmKey, { algorithms: ["RS256"], audience: `http://127.0.0.1:${port}/fcm/token`, issuer: sa.client_email });
      if (payload.scope !== "https://www.googleapis.com/auth/firebase.messaging") return [400, JSON.stringify({ error: "invalid_scope" })];
    } catch (err) {
      return [400, JSON.stringify({ error: "invalid_grant", error_description: String(err) })];
    }
    fake.tokenRequests++;
    const token = `fake-access-${randomBytes(8).toString("hex")}`;
    accessTokens.add(token);
    return [200, JSON.stringify({ access_token: token, expires_in: 3600, token_type: "Bearer" })];
  }

  function fcmSend(req: IncomingMessage, body: Buffer, project: string): [number, string] {
    const headers = headersOf(req);
    let message: { token?: string; data?: Record<string, string>; android?: { collapse_key?: string; notification?: { tag?: string } } } = {};
    try { message = (JSON.parse(body.toString("utf8")) as { message: typeof message }).message; } catch { /* checked below */ }
    const target = message?.token ?? "";
    const refuse = (status: number, error: string): [number, string] => {
      record({ provider: "fcm", target, status, headers, error });
      return [status, JSON.stringify({ error: { status: "INVALID_ARGUMENT", message: error } })];
    };
    const bearer = headers.authorization?.match(/^Bearer (.+)$/)?.[1];
    if (!bearer || !accessTokens.has(bearer)) return refuse(401, "unknown access token");
    if (project !== sa.project_id) return refuse(403, "wrong project");
    if (!target || !message.data || !message.android?.collapse_key) return refuse(400, "message needs token, data and android.collapse_key");
    const status = nextStatus(target, 200);
    const payload = Object.fromEntries(Object.entries(message.data).map(([k, v]) => [k, /^-?\d+$/.test(v) ? Number(v) : v]));
    record({ provider: "fcm", target, status, payload, collapseKey: message.android.collapse_key, headers });
    if (status === 404) return [404, JSON.stringify({ error: { status: "NOT_FOUND", message: "Requested entity was not found.", details: [{ errorCode: "UNREGISTERED" }] } })];
    return [status, status === 200 ? JSON.stringify({ name: `projects/${project}/messages/1` }) : JSON.stringify({ error: { status: "UNAVAILABLE" } })];
  }

  async function apns(req: IncomingMessage, body: Buffer, token: string): Promise<[number, string]> {
    const headers = headersOf(req);
    const refuse = (status: number, reason: string): [number, string] => {
      record({ provider: "apns", target: token, status, headers, error: reason });
      return [status, JSON.stringify({ reason })];
    };
    const jwt = headers.authorization?.match(/^bearer (.+)$/)?.[1];
    if (!jwt) return refuse(403, "MissingProviderToken");
    try {
      if (decodeProtectedHeader(jwt).kid !== keys.APNS_KEY_ID) return refuse(403, "InvalidProviderToken");
      const { payload } = await jwtVerify(jwt, apnsKey, { algorithms: ["ES256"], issuer: keys.APNS_TEAM_ID });
      if (typeof payload.iat !== "number" || payload.iat < Date.now() / 1000 - 3600) return refuse(403, "ExpiredProviderToken");
    } catch {
      return refuse(403, "InvalidProviderToken");
    }
    if (!headers["apns-topic"]) return refuse(400, "MissingTopic");
    if (!["alert", "background"].includes(headers["apns-push-type"] ?? "")) return refuse(400, "InvalidPushType");
    const collapse = headers["apns-collapse-id"];
    if (collapse !== undefined && Buffer.byteLength(collapse) > 64) return refuse(400, "BadCollapseId");
    let parsed: { edgechat?: Record<string, unknown> };
    try { parsed = JSON.parse(body.toString("utf8")) as typeof parsed; } catch { return refuse(400, "PayloadEmpty"); }
    const status = nextStatus(token, 200);
    record({ provider: "apns", target: token, status, payload: parsed.edgechat, collapseKey: collapse, headers });
    const reason = status === 410 ? "Unregistered" : status === 400 ? "BadDeviceToken" : status === 429 ? "TooManyRequests" : "InternalServerError";
    return [status, status === 200 ? "" : JSON.stringify({ reason })];
  }

  async function route(req: IncomingMessage, body: Buffer): Promise<[number, string]> {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (req.method === "GET" && path === "/__records") return [200, JSON.stringify(records)];
    if (req.method === "GET" && path === "/__stats") return [200, JSON.stringify({ tokenRequests: fake.tokenRequests })];
    if (req.method === "POST" && path === "/__script") {
      const { target, statuses } = JSON.parse(body.toString("utf8")) as { target: string; statuses: number[] };
      fake.script(target, statuses);
      return [204, ""];
    }
    if (req.method === "POST" && path === "/__subscribe") {
      const { name } = JSON.parse(body.toString("utf8")) as { name: string };
      return [200, JSON.stringify(fake.webPushSubscription(name))];
    }
    if (req.method !== "POST") return [405, ""];
    let m = path.match(/^\/wp\/([A-Za-z0-9_-]+)$/);
    if (m) return webPush(req, body, m[1]!);
    if (path === "/fcm/token") return fcmToken(req, body);
    m = path.match(/^\/fcm\/v1\/projects\/([^/]+)\/messages:send$/);
    if (m) return fcmSend(req, body, decodeURIComponent(m[1]!));
    m = path.match(/^\/apns(?:-sandbox)?\/3\/device\/([0-9a-fA-F]+)$/);
    if (m) return apns(req, body, m[1]!);
    return [404, ""];
  }

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      route(req, Buffer.concat(chunks)).then(([status, text]) => {
        res.writeHead(status, text ? { "content-type": "application/json" } : {});
        res.end(text);
      }, (err: unknown) => {
        res.writeHead(500);
        res.end(String(err));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as { port: number }).port;
  const url = `http://127.0.0.1:${port}`;

  const fake: FakePush = {
    url, port, records, tokenRequests: 0,
    baseUrls: { FCM_API_BASE_URL: `${url}/fcm`, FCM_TOKEN_URL: `${url}/fcm/token`, APNS_BASE_URL: `${url}/apns`, APNS_SANDBOX_BASE_URL: `${url}/apns-sandbox` },
    webPushSubscription(name) {
      const ecdh = createECDH("prime256v1");
      ecdh.generateKeys();
      const auth = randomBytes(16);
      targets.set(name, { ecdh, auth });
      return { type: "webpush", endpoint: `${url}/wp/${name}`, keys: { p256dh: ecdh.getPublicKey().toString("base64url"), auth: auth.toString("base64url") } };
    },
    script(target, statuses) {
      scripts.set(target, [...statuses]);
    },
    waitFor(match, timeoutMs = 60_000) {
      const found = records.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { match, resolve: (r: PushRecord) => { clearTimeout(timer); resolve(r); } };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`fake push: no matching request in ${timeoutMs} ms; got ${JSON.stringify(records.map((r) => [r.provider, r.target, r.status, r.error]))}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
  return fake;
}
