import { applyD1Migrations, env, type D1Migration } from "cloudflare:test";

// Storage is isolated per test file; applying is idempotent, so every file starts with the schema.
const { ACCOUNT_MIGRATIONS } = env as unknown as { ACCOUNT_MIGRATIONS: D1Migration[] };
await applyD1Migrations(env.ACCOUNTS, ACCOUNT_MIGRATIONS);
