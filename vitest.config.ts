// Unit and integration tests run inside workerd, the same runtime `wrangler dev` runs
// (@cloudflare/vitest-pool-workers 0.15.1 shares wrangler 4.86.0's miniflare).
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { devPushKeys } from "./test/support/fake-push.js";

const migrations = await readD1Migrations("./migrations/accounts");

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        bindings: {
          JWT_SECRET: "edgechat-test-secret-0123456789abcdef0123456789",
          JURISDICTIONS: "simulated",
          // Tests measure the platform, not the limiter; test/channel/rate-limit*.test.ts covers it.
          SEND_RATE_PER_SECOND: "0",
          // Short presence timings so TTL expiry and the offline grace run within a test.
          PRESENCE_OFFLINE_GRACE_MS: "200",
          PRESENCE_TTL_MS: "2000",
          ACCOUNT_MIGRATIONS: migrations,
          // Push: the throwaway dev keys; Web Push endpoints on the loopback fake (test/setup/fake-push-global.ts).
          ...devPushKeys(),
          PUSH_ALLOW_HTTP_LOOPBACK: "true",
          PUSH_RETRY_BASE_SECONDS: "1",
        },
      },
    }),
  ],
  test: {
    include: ["test/**/*.test.ts"],
    // crash-restart drives a real wrangler dev from Node: it runs under test/e2e/vitest.config.ts.
    exclude: ["test/e2e/**", "test/browser/**", "test/reliability/crash-restart.test.ts", "node_modules/**"],
    setupFiles: ["./test/setup/apply-migrations.ts"],
    globalSetup: ["./test/setup/fake-push-global.ts"],
    testTimeout: 20_000,
  },
});
