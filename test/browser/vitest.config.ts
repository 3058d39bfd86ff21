// Browser tests: the web app in Debian's Chromium (playwright-core) against a real `wrangler dev`
// started by each file (test/support/dev-server.ts), plus the web app's DOM-free modules. Files
// run one at a time: each owns a workerd and a browser, and this machine has two cores.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/browser/**/*.test.ts"],
    environment: "node",
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});
