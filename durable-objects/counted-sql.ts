/**
 * An object's SqlStorage with every writing statement counted (`sql.write`, tagged with the
 * object kind) through shared/metrics.ts. The fan-out's promise, "nothing durable per member per
 * message", is asserted on these counts (test/user/work-per-post.test.ts) and reported by the
 * benchmarks, so it is counted where the writes happen rather than estimated.
 *
 * Statements run in one turn without an `await` share one commit; this counts statements that
 * changed at least one row, an upper bound of commits.
 */
import { count } from "../shared/metrics.js";

const WRITE = /^\s*(?:insert(?:\s+or\s+\w+)?\s+into|replace\s+into|update|delete\s+from)\s+(\w+)/i;

/**
 * `sql` itself unless `env.COUNT_SQL_WRITES` is "1" (the test configuration sets it): in
 * production every count() becomes an Analytics Engine data point (shared/analytics.ts), and one
 * per statement would cost more than it tells.
 */
export function countedSqlFor(sql: SqlStorage, object: string, env: object): SqlStorage {
  return (env as { COUNT_SQL_WRITES?: string }).COUNT_SQL_WRITES === "1" ? countedSql(sql, object) : sql;
}

export function countedSql(sql: SqlStorage, object: string): SqlStorage {
  return {
    exec<T extends Record<string, SqlStorageValue>>(query: string, ...bindings: unknown[]): SqlStorageCursor<T> {
      const cursor = sql.exec<T>(query, ...bindings);
      // A statement that changed nothing (a housekeeping DELETE with no match) is not a write.
      const write = WRITE.exec(query);
      if (write && cursor.rowsWritten > 0) count("sql.write", 1, { object, table: write[1]!.toLowerCase() });
      return cursor;
    },
    get databaseSize() {
      return sql.databaseSize;
    },
  } as SqlStorage;
}
