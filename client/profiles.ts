/**
 * Profiles by user id, cached. The server sends ids, not names (in notices, member lists, channel
 * states), so apps render names from here: lookups made in the same tick go out together, at most
 * MAX_PROFILE_LOOKUP ids per request, and an entry is re-read after PROFILE_TTL_MS so renames show.
 *
 * @example
 * const names = await client.users.profiles(["u_g_...", "u_g_..."]);
 * names.get(id)?.display_name;
 */
import type { User } from "./types.js";

/** Ids per GET /v1/users?ids= (the server's cap). */
export const MAX_PROFILE_LOOKUP = 100;
/** A cached profile is read again after this long. */
export const PROFILE_TTL_MS = 5 * 60_000;

interface Entry {
  user: User | undefined;
  at: number;
}

export class ProfileCache {
  private readonly entries = new Map<string, Entry>();
  private queued = new Map<string, { resolve: () => void; reject: (err: unknown) => void }[]>();
  private scheduled = false;

  constructor(private readonly fetchProfiles: (ids: string[]) => Promise<User[]>, private readonly now: () => number = Date.now) {}

  /** The cached profile, if any (fresh or not); undefined when never read or unknown. */
  peek(userId: string): User | undefined {
    return this.entries.get(userId)?.user;
  }

  /** Profiles of `userIds` (unknown ids are left out), read from the server where not fresh. */
  async get(userIds: Iterable<string>): Promise<Map<string, User>> {
    const ids = [...new Set(userIds)].filter((id) => id !== "");
    const stale = ids.filter((id) => {
      const e = this.entries.get(id);
      return !e || this.now() - e.at > PROFILE_TTL_MS;
    });
    if (stale.length > 0) await Promise.all(stale.map((id) => this.enqueue(id)));
    const out = new Map<string, User>();
    for (const id of ids) {
      const user = this.entries.get(id)?.user;
      if (user) out.set(id, user);
    }
    return out;
  }

  /** Takes a profile the app learned elsewhere (the signed-in user, a login answer). */
  put(user: User): void {
    this.entries.set(user.user_id, { user, at: this.now() });
  }

  /** Forgets one profile (or all), so the next get() reads it again. */
  invalidate(userId?: string): void {
    if (userId === undefined) this.entries.clear();
    else this.entries.delete(userId);
  }

  private enqueue(id: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const waiting = this.queued.get(id);
      if (waiting) waiting.push({ resolve, reject });
      else this.queued.set(id, [{ resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batch = this.queued;
    this.queued = new Map();
    const ids = [...batch.keys()];
    for (let i = 0; i < ids.length; i += MAX_PROFILE_LOOKUP) {
      const chunk = ids.slice(i, i + MAX_PROFILE_LOOKUP);
      try {
        const found = await this.fetchProfiles(chunk);
        const at = this.now();
        const byId = new Map(found.map((u) => [u.user_id, u]));
        for (const id of chunk) this.entries.set(id, { user: byId.get(id), at });
        for (const id of chunk) for (const w of batch.get(id)!) w.resolve();
      } catch (err) {
        for (const id of chunk) for (const w of batch.get(id)!) w.reject(err);
      }
    }
  }
}
