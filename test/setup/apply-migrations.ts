import { applyD1Migrations, env, type D1Migration } from "cloudflare:test";

// Storage is isolated per test file; applying is idempotent, so every file starts with the schema.
const { ACCOUNT_MIGRATIONS } = env as unknown as { ACCOUNT_MIGRATIONS: D1Migration[] };
await applyD1Migrations(env.ACCOUNTS, ACCOUNT_MIGRATIONS);
// EU accounts (docs/decisions/021): the same schema in the EU's own database.
await applyD1Migrations(env.ACCOUNTS_EU, ACCOUNT_MIGRATIONS);
