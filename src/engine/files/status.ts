import type { Settings } from '../config/settings.js';
import type { Queryable } from '../db/pool.js';
import { queryRows } from '../db/pool.js';
import { plural } from '../protocol/refuse.js';

/** Attached files (complex obs) as status shows them. */
export interface FilesStatus {
  /** files coming from a neighbour that are not all here yet */
  arriving: number;
  /** bytes of those still to come */
  bytesToCome: number;
  /** files all here that wait for their obs record before they go into OpenMRS's folder */
  waitingForRecord: number;
  /** files here that a neighbour was offered and does not hold whole yet */
  sending: number;
  /** null, or a sentence on files that were not taken, and why */
  problem: string | null;
}

/** Null when this node carries no files (the setting complexObs.dataDir is empty). */
export async function filesStatus(db: Queryable, settings: Settings): Promise<FilesStatus | null> {
  if (!settings.complexObs.dataDir?.trim()) return null;
  const byState = new Map<string, { n: number; left: number; names: string[] }>();
  for (const r of await queryRows(
    db,
    `SELECT state, COUNT(*) AS n, COALESCE(SUM(size - have), 0) AS left_bytes,
            SUBSTRING_INDEX(GROUP_CONCAT(name ORDER BY name SEPARATOR '\\n'), '\\n', 3) AS names
       FROM clinicsync_file_in GROUP BY state`,
  )) {
    byState.set(String(r.state), {
      n: Number(r.n),
      left: Number(r.left_bytes),
      names: String(r.names ?? '').split('\n'),
    });
  }
  const [out] = await queryRows(
    db,
    'SELECT COUNT(DISTINCT name) AS n FROM clinicsync_file_out WHERE done = 0',
  );
  const problems: string[] = [];
  const refused = byState.get('refused');
  if (refused) {
    problems.push(
      `${plural(refused.n, 'attached file')} from another computer ${refused.n === 1 ? 'was' : 'were'} not taken because ${refused.n === 1 ? 'it is' : 'they are'} larger than the limit of ${settings.complexObs.maxFileMegabytes} MB (setting complexObs.maxFileMegabytes): ${listed(refused)}.`,
    );
  }
  const clashes = byState.get('clash');
  if (clashes) {
    problems.push(
      `${plural(clashes.n, 'attached file')} from another computer ${clashes.n === 1 ? 'was' : 'were'} not taken because a different file of the same name is already in OpenMRS's folder here; a data manager should compare them: ${listed(clashes)}.`,
    );
  }
  return {
    arriving: byState.get('partial')?.n ?? 0,
    bytesToCome: byState.get('partial')?.left ?? 0,
    waitingForRecord: byState.get('staged')?.n ?? 0,
    sending: Number(out?.n ?? 0),
    problem: problems.length ? problems.join(' ') : null,
  };
}

function listed(s: { n: number; names: string[] }): string {
  return s.n > s.names.length
    ? `${s.names.join(', ')} and ${s.n - s.names.length} more`
    : s.names.join(', ');
}
