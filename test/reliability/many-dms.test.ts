/**
 * Many DMs at once under CPU contention, against a real `wrangler dev` (Node; run with
 * test/e2e/vitest.config.ts).
 *
 * Both members of every DM send at the same time, each with up to WINDOW SENDs unacknowledged,
 * JSON frames numbered send_seq 1, 2, 3... on one connection, while worker threads burn CPU and
 * the server runs production presence timings (so idle UserObjects hibernate as they would in
 * production). Clients behave like the SDK: a retryable ERROR is retried after its backoff hint,
 * and a SEND unanswered for REQUEST_TIMEOUT_MS is sent again, both with the same client_msg_id
 * (on the same connection, with the next send_seq). Checks:
 *   - every SEND frame ever written is answered (SEND_ACK or ERROR), retried ones included:
 *     nothing waits for ever;
 *   - inside the UserObject no SEND waits longer than SEND_DEADLINE_MS (plus the alarm's
 *     lateness): the server's `send.slow` / `send.deadline` logs say how long each slow one took.
 *     (What the client sees also holds the transport: on a machine this busy, frames have been
 *     seen to reach workerd 45 s after the client wrote them, which no server can bound.)
 *   - every message is acked in the end (a retry is a duplicate with the original seq);
 *   - the other member receives every acked message exactly once, and each DM's seqs strictly
 *     increasing; each sender's messages acked on their first try are stored in send order.
 * It stops by itself: every wait has a deadline.
 *
 * Knobs: EDGECHAT_LOAD_PAIRS (20), EDGECHAT_LOAD_PER_SENDER (60), EDGECHAT_LOAD_BURN (1 worker thread).
 */
import { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startDevServer, type DevServer } from "../support/dev-server.js";

const PAIRS = Number(process.env.EDGECHAT_LOAD_PAIRS ?? 20);
const PER_SENDER = Number(process.env.EDGECHAT_LOAD_PER_SENDER ?? 60);
const BURN = Number(process.env.EDGECHAT_LOAD_BURN ?? 1);
const WINDOW = 8;
/** The SDK resends a SEND unanswered this long (client.ts DEFAULT_REQUEST_TIMEOUT_MS). */
const REQUEST_TIMEOUT_MS = 30_000;
const SEND_DEADLINE_MS = 10_000;
/** How late the object's alarm may fire on this machine, on top of the deadline. */
const ALARM_SLACK_MS = 10_000;
/** The whole sending phase; past it the test fails and reports who is still waiting. */
const RUN_LIMIT_MS = 240_000;
const PASSWORD = "correct horse battery";

let server: DevServer;
const burners: Worker[] = [];
beforeAll(async () => {
  server = await startDevServer({ vars: { PRESENCE_TTL_MS: "600000", PRESENCE_OFFLINE_GRACE_MS: "15000", SEND_DEADLINE_MS: String(SEND_DEADLINE_MS) } });
});
afterAll(async () => {
  await Promise.all(burners.map((b) => b.terminate()));
  await server?.stop();
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * POST with a retry when wrangler restarts the Worker under the request (its build watcher can do
 * that right after start); a registration that landed before the restart is then a login.
 */
async function post<T>(path: string, body: unknown, token?: string): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(server.url + path, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    if (text.includes("restarted mid-request") && attempt < 3) { await sleep(500); continue; }
    const json = JSON.parse(text) as T & { code?: string };
    if (res.status === 409 && json.code === "username_taken" && attempt > 0) return post<T>("/v1/auth/login", body);
    if (res.status >= 300) throw new Error(`${path}: ${res.status} ${text.slice(0, 200)}`);
    return json;
  }
}

interface Outgoing { id: string; index: number; sentAt: number; firstTry: boolean; answered?: boolean }
type ErrorPayload = { code?: string; retryable?: boolean; backoff_hint_ms?: number; client_msg_id?: string };

/** One device speaking raw JSON frames, as the SDK would. */
class Sender {
  readonly acks = new Map<string, { seq: number; index: number; firstTry: boolean }>();
  /** Every DELIVERed message: [channel, seq, client_msg_id]. */
  readonly delivered: { channel: string; seq: number; id: string }[] = [];
  readonly errors: ErrorPayload[] = [];
  readonly waits: number[] = [];
  /** SEND frames written and not answered yet, by request_id (= send_seq). */
  readonly inFlight = new Map<number, Outgoing>();
  /** Messages not acked yet (the SDK's outbox), by client_msg_id. */
  readonly outbox = new Map<string, Outgoing>();
  timeouts = 0;
  private sendSeq = 0;
  private wake: () => void = () => {};
  private resumed!: Promise<void>;

  constructor(readonly ws: WebSocket, readonly user: number) {
    this.resumed = new Promise((resolve, reject) => {
      ws.on("error", reject);
      ws.on("message", (data) => {
        const f = JSON.parse(String(data)) as { type: string; request_id?: number; payload?: Record<string, unknown> };
        if (f.type === "HELLO") ws.send(JSON.stringify({ type: "RESUME", request_id: 0, payload: {} }));
        else if (f.type === "RESUMED") resolve();
        else if (f.type === "DELIVER") {
          for (const m of (f.payload?.messages ?? []) as { channel_id: string; seq: number; client_msg_id: string }[]) {
            this.delivered.push({ channel: m.channel_id, seq: Number(m.seq), id: m.client_msg_id });
          }
        } else if (f.type === "SEND_ACK" || f.type === "ERROR") this.answer(f.request_id ?? 0, f.type, f.payload ?? {});
      });
    });
  }

  ready(): Promise<void> {
    return this.resumed;
  }

  private answer(requestId: number, type: string, payload: Record<string, unknown>): void {
    const out = this.inFlight.get(requestId);
    if (!out) return;
    this.inFlight.delete(requestId);
    out.answered = true;
    this.waits.push(Date.now() - out.sentAt);
    if (!this.outbox.has(out.id)) return; // acked already through another attempt
    if (type === "SEND_ACK") {
      this.outbox.delete(out.id);
      this.acks.set(out.id, { seq: Number(payload.seq), index: out.index, firstTry: out.firstTry });
    } else {
      const e = payload as ErrorPayload;
      this.errors.push(e);
      if (e.retryable) setTimeout(() => this.retry(out), Math.max(e.backoff_hint_ms ?? 0, 100));
      else { this.outbox.delete(out.id); this.acks.set(out.id, { seq: -1, index: out.index, firstTry: false }); } // refused for good: a failure below
    }
    this.wake();
  }

  private retry(out: Outgoing): void {
    if (this.outbox.has(out.id)) this.write({ ...out, firstTry: false });
  }

  write(out: Outgoing): void {
    const requestId = ++this.sendSeq; // one counter: request_id and send_seq both number this connection's SENDs
    const sent = { ...out, sentAt: Date.now(), answered: false };
    this.inFlight.set(requestId, sent);
    this.outbox.set(out.id, sent);
    // Like the SDK: no answer within the request timeout, send it again (the first may still be answered).
    setTimeout(() => {
      if (sent.answered || this.outbox.get(out.id) !== sent) return;
      this.timeouts++;
      this.retry(sent);
    }, REQUEST_TIMEOUT_MS).unref();
    this.ws.send(JSON.stringify({
      type: "SEND", request_id: requestId,
      payload: { channel_id: this.channel, client_msg_id: out.id, send_seq: requestId, content: { text: { text: `m${out.index}` } } },
    }));
  }

  channel = "";

  /** Sends PER_SENDER messages, at most WINDOW unanswered, until all are acked. */
  async run(): Promise<void> {
    for (let i = 0; i < PER_SENDER; i++) {
      while (this.outbox.size >= WINDOW) await new Promise<void>((r) => { this.wake = r; });
      this.write({ id: `u${this.user}-m${i}`, index: i, sentAt: 0, firstTry: true });
    }
    while (this.acks.size < PER_SENDER) await new Promise<void>((r) => { this.wake = r; });
  }

  /** The oldest unanswered SEND's age, for the failure report. */
  oldestWait(): number {
    let oldest = 0;
    for (const o of this.inFlight.values()) oldest = Math.max(oldest, Date.now() - o.sentAt);
    return oldest;
  }
}

describe("many DMs at once under CPU contention", () => {
  it(`${PAIRS} DMs, both members sending ${PER_SENDER} messages, window ${WINDOW}: every SEND answered in time, every ack delivered once, in order`, async () => {
    const tag = Math.random().toString(36).slice(2, 7);
    const users: { id: string; token: string }[] = [];
    for (let i = 0; i < PAIRS * 2; i += 10) {
      await Promise.all(Array.from({ length: Math.min(10, PAIRS * 2 - i) }, async (_, k) => {
        const r = await post<{ user_id: string; access_token: string }>("/v1/auth/register", { username: `load${tag}${i + k}`, password: PASSWORD });
        users[i + k] = { id: r.user_id, token: r.access_token };
      }));
    }
    const channels: string[] = [];
    for (let p = 0; p < PAIRS; p++) {
      const r = await post<{ channel: { channel_id: string } }>("/v1/channels", { type: "dm", member: users[2 * p + 1]!.id }, users[2 * p]!.token);
      channels[p] = r.channel.channel_id;
    }
    const senders = users.map((u, i) => new Sender(new WebSocket(`${server.wsUrl}/v1/connect?device_id=d${i}&access_token=${u.token}`, "edgechat.v1.json"), i));
    await Promise.all(senders.map((s) => s.ready()));
    for (const s of senders) s.channel = channels[Math.floor(s.user / 2)]!;

    for (let i = 0; i < BURN; i++) burners.push(new Worker("for (;;) {}", { eval: true }));
    const started = Date.now();
    const done = Promise.all(senders.map((s) => s.run()));
    const outcome = await Promise.race([done.then(() => "done" as const), sleep(RUN_LIMIT_MS).then(() => "limit" as const)]);
    await Promise.all(burners.splice(0).map((b) => b.terminate()));
    const waiting = () => senders.filter((s) => s.inFlight.size > 0).map((s) => `user ${s.user}: ${s.inFlight.size} unanswered, oldest ${s.oldestWait()} ms`);
    expect(outcome, `still waiting after ${RUN_LIMIT_MS} ms: ${waiting().slice(0, 10).join("; ")}`).toBe("done");
    const elapsed = Date.now() - started;
    // Every SEND frame gets an answer, including first attempts the client gave up on and resent.
    const answeredBy = Date.now() + 60_000;
    while (senders.some((s) => s.inFlight.size > 0) && Date.now() < answeredBy) await sleep(250);
    expect(waiting(), "SEND frames never answered").toEqual([]);

    // Let the last fan-out rounds land: wait until every receiver holds every acked message.
    const expectedFor = (s: Sender) => senders[s.user ^ 1]!;
    const deadline = Date.now() + 60_000;
    const missing = () => senders.reduce((n, s) => {
      const got = new Set(s.delivered.map((d) => d.id));
      return n + [...expectedFor(s).acks.keys()].filter((id) => !got.has(id)).length;
    }, 0);
    while (missing() > 0 && Date.now() < deadline) await sleep(250);

    const waits = senders.flatMap((s) => s.waits).sort((a, b) => a - b);
    const errors = new Map<string, number>();
    for (const e of senders.flatMap((s) => s.errors)) errors.set(e.code ?? "?", (errors.get(e.code ?? "?") ?? 0) + 1);
    const events = (event: string) => server.log.filter((l) => l.includes(`"event":"${event}"`)).map((l) => JSON.parse(l.slice(l.indexOf("{"))) as { ms?: number });
    const serverWaits = [...events("send.slow"), ...events("send.deadline")].map((e) => e.ms ?? 0);
    console.log(
      `many-dms: ${PAIRS} DMs × 2 senders × ${PER_SENDER} in ${elapsed} ms; client-side answers p50 ${waits[Math.floor(waits.length / 2)]} ms, `
      + `max ${waits.at(-1)} ms, ${senders.reduce((n, s) => n + s.timeouts, 0)} resent after ${REQUEST_TIMEOUT_MS} ms; errors ${JSON.stringify(Object.fromEntries(errors))}; `
      + `server: woke from hibernation ${events("user.woke").length}, slow ${events("send.slow").length}, deadlines ${events("send.deadline").length}, `
      + `gaps released ${events("send.gap_released").length}, longest wait in the object ${Math.max(0, ...serverWaits)} ms`,
    );

    expect(Math.max(0, ...serverWaits), "a SEND waited in the UserObject past its deadline").toBeLessThanOrEqual(SEND_DEADLINE_MS + ALARM_SLACK_MS);
    for (const s of senders) {
      const refused = [...s.acks].filter(([, a]) => a.seq < 0).map(([id]) => id);
      expect(refused, `user ${s.user}: messages refused for good`).toEqual([]);
      // Stored in send order: messages acked on their first try have increasing seqs.
      const firstTries = [...s.acks.values()].filter((a) => a.firstTry).sort((a, b) => a.index - b.index).map((a) => a.seq);
      expect(firstTries, `user ${s.user}: send order`).toEqual([...firstTries].sort((a, b) => a - b));

      const mine = s.delivered.filter((d) => d.channel === s.channel);
      const seqs = mine.map((d) => d.seq);
      expect(new Set(seqs).size, `user ${s.user}: a message delivered twice`).toBe(seqs.length);
      expect(seqs, `user ${s.user}: deliveries out of order`).toEqual([...seqs].sort((a, b) => a - b));
      const bySeq = new Map(mine.map((d) => [d.seq, d.id]));
      for (const [id, ack] of expectedFor(s).acks) {
        expect(bySeq.get(ack.seq), `user ${s.user} never received ${id} (seq ${ack.seq})`).toBe(id);
      }
    }
    for (const s of senders) s.ws.terminate();
  }, RUN_LIMIT_MS + 180_000);
});
