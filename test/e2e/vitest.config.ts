// End-to-end tests: Node clients (the project's SDK over the `ws` package) against a real
// `wrangler dev` started by each test file (test/support/dev-server.ts). Files run one at a time:
// each owns a workerd, and this machine has two cores.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/e2e/**/*.test.ts", "test/reliability/crash-restart.test.ts", "test/reliability/many-dms.test.ts"],
    environment: "node",
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
