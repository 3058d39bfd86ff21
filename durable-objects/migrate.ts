/**
 * Versioned, idempotent schema migrations for a SQLite-backed Durable Object. Called from the
 * constructor under blockConcurrencyWhile on every wake; skips work when the stored version is
 * current. Migrations only ever add (tables, columns, indexes) so that old code still running
 * during a deploy can read what new code wrote, and the other way round; a migration that
 * rewrites rows (a function) needs readers that take both forms, and says how.
 */
export type Migration = string | ((sql: SqlStorage) => void);

export function migrate(sql: SqlStorage, migrations: readonly Migration[]): void {
  sql.exec("CREATE TABLE IF NOT EXISTS _schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)");
  const row = sql.exec<{ version: number }>("SELECT version FROM _schema WHERE id = 1").toArray()[0];
  const current = row?.version ?? 0;
  for (let v = current; v < migrations.length; v++) {
    const m = migrations[v]!;
    if (typeof m === "string") sql.exec(m);
    else m(sql);
  }
  if (current < migrations.length) {
    sql.exec("INSERT INTO _schema (id, version) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version", migrations.length);
  }
}
