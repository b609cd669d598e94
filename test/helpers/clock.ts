import type { Pool } from 'mysql2/promise';

export const DAY = 86_400_000;

/**
 * Runs a write as on a laptop whose clock is `days` ahead: the session's NOW() (and so the
 * capture triggers' time) runs ahead too. The test sets the node's own `now` to match.
 */
export async function writeWithClockAhead(pool: Pool, days: number, sql: string): Promise<void> {
  const conn = await pool.getConnection();
  try {
    await conn.query('SET TIMESTAMP = UNIX_TIMESTAMP(NOW(6)) + ? * 86400', [days]);
    await conn.query(sql);
  } finally {
    await conn.query('SET TIMESTAMP = DEFAULT');
    conn.release();
  }
}
