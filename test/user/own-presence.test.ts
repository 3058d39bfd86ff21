/**
 * A user's own presence inside their UserObject (durable-objects/user/presence.ts) over real
 * sockets and a recording shard link: the status folded from the devices and reported on change,
 * "offline" unwatching the contacts, and the keep-alive's cadence while a device is connected.
 * test/user/presence.test.ts runs presence end to end through the shards.
 */
import { describe, expect, it } from "vitest";
import { keepAliveMs, UserPresence, type PresenceHost, type ShardLink } from "../../durable-objects/user/presence.js";
import { DEFAULT_PRESENCE_TIMINGS } from "../../durable-objects/presence/settings.js";

const TTL = 9_000;

function device(status: "online" | "away"): WebSocket {
  const pair = new WebSocketPair();
  const ws = pair[1];
  ws.accept();
  ws.serializeAttachment({ deviceId: `d-${status}`, status });
  return ws;
}

function setup(opts: { me?: string; share?: boolean; ttl?: number } = {}) {
  const calls: string[] = [];
  const sockets: WebSocket[] = [];
  /** What each socket's attachment keeps of the keep-alive (survives hibernation). */
  const kept = new Map<WebSocket, number>();
  const link: ShardLink = {
    report: async (status, refresh) => void calls.push(`report ${status}${refresh ? " (keep-alive)" : ""}`),
    watch: async (ids) => (calls.push(`watch ${ids.join(",")}`), []),
    unwatch: async (ids) => void calls.push(`unwatch ${ids.join(",")}`),
  };
  const host: PresenceHost = {
    userId: () => ("me" in opts ? opts.me : "u_me"),
    sockets: () => sockets,
    sharePresence: () => opts.share ?? true,
    contacts: () => ["u_bob", "u_carol"],
    keptDue: () => Math.max(0, ...sockets.map((ws) => kept.get(ws) ?? 0)) || undefined,
    keepDue: (at) => { for (const ws of sockets) kept.set(ws, at); },
    link: () => link,
    waitUntil: () => {},
  };
  return { presence: new UserPresence(host, opts.ttl ?? TTL), calls, sockets, host };
}

describe("UserPresence", () => {
  it("reports the status folded from the devices, hidden when not shared, and offline unwatches the contacts", () => {
    const { presence, calls, sockets } = setup();
    const phone = device("away");
    sockets.push(phone);
    presence.changed();
    sockets.push(device("online"));
    presence.changed();
    presence.changed(sockets[1]); // the online one is closing
    sockets.length = 0;
    presence.changed();
    expect(calls).toEqual(["report away", "report online", "report away", "report offline", "unwatch u_bob,u_carol"]);

    const hidden = setup({ share: false });
    hidden.sockets.push(device("online"));
    hidden.presence.changed();
    expect(hidden.calls).toEqual(["report hidden"]);

    const nobody = setup({ me: undefined });
    nobody.sockets.push(device("online"));
    nobody.presence.changed();
    expect(nobody.calls).toEqual([]);
  });

  it("keeps alive every TTL/3 while a device is connected, extending the contacts' watches, and not at all without one", async () => {
    const { presence, calls, sockets } = setup();
    const period = keepAliveMs(TTL);
    expect(period).toBe(3_000);
    expect(presence.nextDue()).toBeUndefined();
    sockets.push(device("online"));
    expect(presence.connected(1_000)).toBe(1_000 + period);
    expect(presence.connected(2_000)).toBe(1_000 + period); // a second device: the same keep-alive
    await presence.keepAlive(2_000);
    expect(calls).toEqual([]);
    await presence.keepAlive(1_000 + period);
    expect(calls).toEqual(["report online (keep-alive)", "watch u_bob,u_carol"]);
    expect(presence.nextDue()).toBe(1_000 + 2 * period);
    sockets.length = 0;
    await presence.keepAlive(10_000);
    expect(calls).toHaveLength(2);
    expect(presence.nextDue()).toBeUndefined();
    expect(keepAliveMs(1_500)).toBe(1_000);
  });

  it("costs 18 keep-alives an hour per idle connected user at production timings, none repeated by a wake after hibernation", async () => {
    const ttl = DEFAULT_PRESENCE_TIMINGS.ttlMs;
    const { presence, calls, sockets, host } = setup({ ttl });
    sockets.push(device("online"));
    const hour = 3_600_000;
    let alarms = 0;
    // The alarm comes back when the keep-alive is due, and only then (nothing else is going on).
    for (let t = presence.connected(0); t <= hour; t = presence.nextDue()!) {
      await presence.keepAlive(t);
      alarms++;
    }
    expect(alarms).toBe(hour / keepAliveMs(ttl)); // 18 (it was 120 with a 90 s TTL)
    expect(calls.filter((c) => c.startsWith("report"))).toHaveLength(18);
    expect(calls.filter((c) => c.startsWith("watch"))).toHaveLength(18);
    // A new instance (the object hibernated, something else woke it): the due time is on the sockets.
    const fresh = new UserPresence(host, ttl);
    const due = fresh.nextDue()!;
    expect(due).toBe(presence.nextDue());
    await fresh.keepAlive(due - 1);
    expect(calls).toHaveLength(36);
    await fresh.keepAlive(due);
    expect(calls).toHaveLength(38);
  });
});
