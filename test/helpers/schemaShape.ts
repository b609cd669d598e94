import { PROGRESS_TABLE } from '../../src/engine/clone/progress.js';
import { queryRows, type Queryable } from '../../src/engine/db/pool.js';

/**
 * Everything information_schema says about a database's shape, with its own name taken out (and
 * the loading clone's own bookkeeping table, which adoption drops).
 */
export async function shape(db: Queryable, database: string): Promise<Record<string, unknown[]>> {
  const strip = (v: unknown) =>
    typeof v === 'string' ? v.split(`\`${database}\`.`).join('`DB`.') : v;
  const read = async (sql: string) =>
    (await queryRows(db, sql, [database]))
      .filter((r) => r.TABLE_NAME !== PROGRESS_TABLE)
      .map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, strip(v)])));
  return {
    tables: await read(
      `SELECT TABLE_NAME, TABLE_TYPE, ENGINE, ROW_FORMAT, TABLE_COLLATION, AUTO_INCREMENT, CREATE_OPTIONS, TABLE_COMMENT
         FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME`,
    ),
    columns: await read(
      `SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE, COLUMN_TYPE,
              CHARACTER_SET_NAME, COLLATION_NAME, COLUMN_KEY, EXTRA, COLUMN_COMMENT
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`,
    ),
    indexes: await read(
      `SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE, SUB_PART, INDEX_TYPE
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX`,
    ),
    foreignKeys: await read(
      `SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE
         FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? ORDER BY TABLE_NAME, CONSTRAINT_NAME`,
    ),
    views: await read(
      `SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, IS_UPDATABLE, SECURITY_TYPE
         FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME`,
    ),
    triggers: await read(
      `SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER,
              ACTION_STATEMENT, SQL_MODE
         FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY TRIGGER_NAME`,
    ),
    routines: await read(
      `SELECT ROUTINE_NAME, ROUTINE_TYPE, DTD_IDENTIFIER, ROUTINE_DEFINITION, IS_DETERMINISTIC,
              SQL_DATA_ACCESS, SECURITY_TYPE, SQL_MODE, ROUTINE_COMMENT
         FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_NAME`,
    ),
    parameters: await read(
      `SELECT SPECIFIC_NAME, ORDINAL_POSITION, PARAMETER_MODE, PARAMETER_NAME, DTD_IDENTIFIER
         FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = ? ORDER BY SPECIFIC_NAME, ORDINAL_POSITION`,
    ),
    events: await read(
      `SELECT EVENT_NAME, EVENT_DEFINITION, EVENT_TYPE, INTERVAL_VALUE, INTERVAL_FIELD, STATUS,
              ON_COMPLETION, SQL_MODE, EVENT_COMMENT
         FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME`,
    ),
    // The server's own text of every table, as SHOW CREATE TABLE prints it (counters included).
    createTables: await Promise.all(
      (
        await queryRows(
          db,
          "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> ? ORDER BY TABLE_NAME",
          [database, PROGRESS_TABLE],
        )
      ).map(async (r) => {
        const [show] = await queryRows(db, `SHOW CREATE TABLE \`${database}\`.\`${String(r.t)}\``);
        return show!['Create Table'] as unknown;
      }),
    ),
  };
}
