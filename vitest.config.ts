// Unit and integration tests run inside workerd, the same runtime `wrangler dev` runs
// (@cloudflare/vitest-pool-workers 0.15.1 shares wrangler 4.86.0's miniflare).
//
// Two projects:
//   unit         pure modules and the client SDK: no bindings, no Durable Objects. All its files
//                run in ONE workerd (isolate: false, one worker), in seconds. `npm run test:unit`.
//   integration  the Worker, its Durable Objects and D1 through SELF and the bindings, a workerd
//                per file, two files at a time. `npm run test:integration`.
// `npx vitest run --config vitest.config.ts test/<folder or file>` runs whichever files match.
import { readFileSync } from "node:fs";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { devPushKeys } from "./test/support/fake-push.js";

const migrations = await readD1Migrations("./migrations/accounts");

/** The Worker's own compatibility settings, for the unit project's binding-less workerd. */
function workerCompatibility(): { compatibilityDate: string; compatibilityFlags: string[] } {
  const toml = readFileSync(new URL("./wrangler.toml", import.meta.url), "utf8");
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
  const flags = /^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1];
  if (!date) throw new Error("wrangler.toml has no compatibility_date");
  return { compatibilityDate: date, compatibilityFlags: [...(flags ?? "").matchAll(/"([^"]+)"/g)].map((m) => m[1]!) };
}

/** Files that need neither the Worker nor a binding: they run in a plain workerd in seconds. */
export const UNIT_TESTS = [
  "test/protocol/**/*.test.ts",
  "test/shared/**/*.test.ts",
  "test/channel/hlc.test.ts",
  "test/channel/rate-limit.test.ts",
  "test/user/send-pipeline.test.ts",
  "test/user/ack-deadline.test.ts",
  "test/user/overload.test.ts",
  "test/client/**/*.test.ts",
  "test/bench/**/*.test.ts",
];

/** The Worker from wrangler.toml with the test settings. */
function workerPlugin() {
  return cloudflareTest({
    wrangler: { configPath: "./wrangler.toml" },
    miniflare: {
      bindings: {
        JWT_SECRET: "edgechat-test-secret-0123456789abcdef0123456789",
        JURISDICTIONS: "simulated",
        // SQL writes counted through the metrics seam (durable-objects/counted-sql.ts): per-post work tests.
        COUNT_SQL_WRITES: "1",
        // Tests measure the platform, not the limiter; test/channel/rate-limit*.test.ts covers it.
        SEND_RATE_PER_SECOND: "0",
        // Short presence timings so TTL expiry and the offline grace run within a test.
        PRESENCE_OFFLINE_GRACE_MS: "200",
        PRESENCE_TTL_MS: "2000",
        // Presence damping short too: deltas held back by it arrive within a test.
        PRESENCE_MIN_INTERVAL_MS: "300",
        ACCOUNT_MIGRATIONS: migrations,
        // Push: the throwaway dev keys; Web Push endpoints on the loopback fake (test/setup/fake-push-global.ts).
        ...devPushKeys(),
        PUSH_ALLOW_HTTP_LOOPBACK: "true",
        PUSH_RETRY_BASE_SECONDS: "1",
        // Erasure in small steps, one per queue message, so a test sees a job cross several of
        // them (and can restart the objects halfway); a stalled job is re-driven after 3 s.
        ERASURE_BATCH_SIZE: "3",
        ERASURE_STEPS_PER_MESSAGE: "1",
        ERASURE_REDRIVE_MS: "3000",
      },
    },
  });
}

/** Not run inside workerd: Node-side suites with their own configs (test/e2e, test/browser). */
// crash-restart and many-dms drive a real wrangler dev from Node: they run under test/e2e/vitest.config.ts.
const NODE_SIDE = ["test/e2e/**", "test/browser/**", "test/reliability/crash-restart.test.ts", "test/reliability/many-dms.test.ts", "node_modules/**"];

export default defineConfig({
  test: {
    // A file's workerd is torn down when its last test ends; an object still finishing background
    // work then (an alarm, a fan-out pump, a relay leave) and logging a line makes the pool reject
    // "Closing rpc while \"onUserConsoleLog\" was pending". That error comes from the pool's own
    // RPC to the test runner, after every test of the file passed, never from edgechat's code:
    // it is not counted. Any other unhandled error still fails the run.
    onUnhandledError(error) {
      if (error.name === "EnvironmentTeardownError" && /Closing rpc while/.test(error.message)) return false;
    },
    projects: [
      {
        plugins: [cloudflareTest({ miniflare: workerCompatibility() })],
        test: {
          name: "unit",
          include: UNIT_TESTS,
          exclude: NODE_SIDE,
          isolate: false,
          maxWorkers: 1,
          testTimeout: 20_000,
        },
      },
      {
        plugins: [workerPlugin()],
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          exclude: [...NODE_SIDE, ...UNIT_TESTS],
          setupFiles: ["./test/setup/apply-migrations.ts"],
          globalSetup: ["./test/setup/fake-push-global.ts"],
          // A workerd per file, and with it empty storage per file. (Sharing one, as the unit
          // project does, made every SELF.fetch and Durable Object call slower with each file
          // in 0.15.1, about 45× by the fifth; @cloudflare/vitest-plugin 1.4.5 fixed that.)
          isolate: true,
          // Two files at a time: a file's workerd start and module loading leave a core idle
          // (`--maxWorkers=1` to compare).
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
          testTimeout: 20_000,
        },
      },
    ],
  },
});
