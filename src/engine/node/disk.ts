import fs from 'node:fs';
import type { Queryable } from '../db/pool.js';
import { queryRows } from '../db/pool.js';

/*
 * Below a free-disk threshold a node stops applying received changes (DESIGN §9, issue 8 item 7):
 * a clinic laptop whose disk fills up must keep OpenMRS writing (capture costs one small row per
 * change and never stops), but must not let ClinicSync fill the last megabytes with a parent's
 * backlog. Applying resumes by itself once space is back: the check runs before every apply.
 *
 * The disk that matters is the database's: its data folder when the database runs on this
 * computer, else this node's home folder.
 */

export interface DiskState {
  /** where free space was measured */
  path: string;
  freeBytes: number;
  thresholdBytes: number;
  /** a sentence when applying must stop, else null */
  stop: string | null;
}

const MB = 1024 * 1024;

export class DiskGuard {
  private dataDir: string | null | undefined;

  constructor(
    private readonly db: Queryable,
    private readonly homeDir: string,
    private readonly thresholdMegabytes: () => number,
  ) {}

  /** Measures free space now; `stop` says why applying must wait, or is null. */
  async check(): Promise<DiskState> {
    const threshold = this.thresholdMegabytes() * MB;
    const path = await this.where();
    let free: number;
    try {
      const s = await fs.promises.statfs(path);
      free = Number(s.bavail) * Number(s.bsize);
    } catch {
      // A folder that cannot be measured is not a reason to stop syncing.
      return { path, freeBytes: Infinity, thresholdBytes: threshold, stop: null };
    }
    const stop =
      free < threshold
        ? `The disk holding ${path} has ${megabytes(free)} free, less than the ${megabytes(threshold)} set in storage.minFreeMegabytes; ClinicSync applies no received changes until space is freed (changes made here are still recorded).`
        : null;
    return { path, freeBytes: free, thresholdBytes: threshold, stop };
  }

  private async where(): Promise<string> {
    if (this.dataDir === undefined) {
      this.dataDir = null;
      try {
        const [r] = await queryRows(this.db, 'SELECT @@datadir AS d');
        const dir = r?.d == null ? '' : String(r.d);
        if (dir && fs.existsSync(dir)) this.dataDir = dir;
      } catch {
        // the home folder then
      }
    }
    return this.dataDir ?? this.homeDir;
  }
}

function megabytes(n: number): string {
  return `${Math.floor(n / MB).toLocaleString('en-US')} MB`;
}

const guards = new WeakMap<object, DiskGuard>();

/** The one guard of a node (its data folder is looked up once). */
export function diskGuardOf(node: {
  pool: Queryable;
  home: { dir: string };
  settings: { storage: { minFreeMegabytes: number } };
}): DiskGuard {
  let g = guards.get(node);
  if (!g) {
    g = new DiskGuard(node.pool, node.home.dir, () => node.settings.storage.minFreeMegabytes);
    guards.set(node, g);
  }
  return g;
}
