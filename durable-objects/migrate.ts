/**
 * Versioned, idempotent schema migrations for a SQLite-backed Durable Object. Called from the
 * constructor under blockConcurrencyWhile on every wake; skips work when the stored version is
 * current. Migrations only ever add (tables, columns, indexes) so that old code still running
 * during a deploy can read what new code wrote, and the other way round; a migration that
 * rewrites rows (a function) needs readers that take both forms, and says how.
 */
export type Migration = string | ((sql: SqlStorage) => void);

export function migrate(sql: SqlStorage, migrations: readonly Migration[]): void {
  const current = storedVersion(sql);
  for (let v = current; v < migrations.length; v++) {
    const m = migrations[v]!;
    if (typeof m === "string") sql.exec(m);
    else m(sql);
  }
  if (current < migrations.length) {
    sql.exec("INSERT INTO _schema (id, version) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version", migrations.length);
  }
}

/**
 * The stored schema version; 0 for a new object, whose `_schema` table is created here. Read
 * first, so that every wake after the first runs one SQL text, not two: the runtime keeps each
 * distinct text an object ran compiled for the object's lifetime (docs/decisions/026).
 */
function storedVersion(sql: SqlStorage): number {
  try {
    return sql.exec<{ version: number }>("SELECT version FROM _schema WHERE id = 1").toArray()[0]?.version ?? 0;
  } catch (err) {
    if (!/no such table/i.test(err instanceof Error ? err.message : String(err))) throw err;
    sql.exec("CREATE TABLE IF NOT EXISTS _schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)");
    return 0;
  }
}
