import fs from 'node:fs';
import path from 'node:path';

/*
 * The node's log file (DESIGN §9: log files rotate), in the home's logs/ folder: one JSON object
 * per line, with a time, a level, one sentence and a few named fields (route, node id, status,
 * milliseconds). Callers hand it sentences of their own, never a request body, a value or a
 * secret: the log carries no patient data. When the file passes storage.logMaxBytes it becomes
 * clinic-sync.log.1 (the older ones move up), and at most storage.logFiles files are kept.
 */

export type LogLevel = 'info' | 'warn' | 'error';

export interface LogEntry {
  level: LogLevel;
  message: string;
  route?: string;
  node?: string;
  status?: number;
  ms?: number;
}

export interface LogLimits {
  logMaxBytes: number;
  logFiles: number;
}

export const LOG_FILE = 'clinic-sync.log';

export class RotatingLog {
  private readonly file: string;
  private size: number;

  constructor(
    private readonly dir: string,
    private readonly limits: () => LogLimits,
  ) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.file = path.join(dir, LOG_FILE);
    this.size = sizeOf(this.file);
  }

  write(entry: LogEntry, at: Date = new Date()): void {
    const fields: Record<string, unknown> = { time: at.toISOString(), level: entry.level };
    fields.message = entry.message;
    for (const k of ['route', 'node', 'status', 'ms'] as const) {
      if (entry[k] !== undefined) fields[k] = entry[k];
    }
    const line = `${JSON.stringify(fields)}\n`;
    try {
      if (this.size > 0 && this.size + Buffer.byteLength(line) > this.limits().logMaxBytes) {
        this.rotate();
      }
      fs.appendFileSync(this.file, line, { mode: 0o600 });
      this.size += Buffer.byteLength(line);
    } catch {
      // A full or read-only disk must not stop the node; the line also went to stderr.
    }
  }

  /** clinic-sync.log → .1 → .2 …; the oldest beyond logFiles is deleted. */
  private rotate(): void {
    const keep = Math.max(1, this.limits().logFiles);
    const numbered = (n: number) => (n === 0 ? this.file : `${this.file}.${n}`);
    fs.rmSync(numbered(keep - 1), { force: true });
    for (let n = keep - 2; n >= 0; n--) {
      if (fs.existsSync(numbered(n))) fs.renameSync(numbered(n), numbered(n + 1));
    }
    // With one file kept, the current one was just deleted: start afresh.
    this.size = 0;
  }
}

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}
