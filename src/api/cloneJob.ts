import { z } from 'zod';
import { settingsSchema } from '../engine/config/settings.js';
import { parseDbUrl } from '../engine/db/url.js';
import { ApiError, type ApiErrorBody, type CloneProgress, type CloneRequest } from './types.js';

/**
 * The clone flow, provided by the clone engine (src/engine/clone): runs one clone of a parent
 * into an empty database to the end, reporting progress as it goes, and rejects with a SyncError
 * (or ApiError) saying why when it fails. The API only starts it and relays its progress.
 */
export interface CloneRunner {
  run(req: CloneRequest, onProgress: (p: CloneStep) => void): Promise<void>;
}

/** A runner's progress report: failures come as its rejection, not as a step. */
export type CloneStep = Omit<CloneProgress, 'error'>;

/** An address a main server can have: http:// or https:// with a host. */
export const httpUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
});

const cloneSchema = z
  .object({
    parentUrl: httpUrl,
    code: z.string().trim().min(1).max(100),
    dbUrl: z.string().min(1).max(1_000),
    name: settingsSchema.shape.name,
    fingerprint: z.string().min(1).max(200).nullable().optional(),
  })
  .strict();

export interface CloneJobOptions {
  /** the clone flow; without it start() rejects with 'state' */
  runner?: CloneRunner;
  /** every change of progress, in order */
  report: (p: CloneProgress) => void;
  /** how a runner's failure reads (kind and sentence) */
  explain: (e: unknown) => ApiErrorBody;
  /** after a clone finished well, once its 'done' progress was reported */
  onDone?: () => void;
}

/**
 * One clone at a time, run in the background by the api that started it (the running node's
 * api, or the setup-mode api of a computer with no node yet): its progress, kept for whoever
 * asks later, and its failure as a kind and a sentence.
 */
export class CloneJob {
  private current: CloneProgress | null = null;
  private running = false;

  constructor(private readonly opts: CloneJobOptions) {}

  progress(): CloneProgress | null {
    return this.current ? { ...this.current } : null;
  }

  /** Validates the request and starts the clone; returns its first progress. */
  start(req: unknown): CloneProgress {
    const r = cloneSchema.safeParse(req);
    if (!r.success) {
      throw new ApiError(
        'usage',
        'A clone needs the parent address (http:// or https://), the pairing code, the database address and a name of 1 to 40 letters, digits, spaces, dots, dashes or underscores.',
      );
    }
    const valid = r.data;
    parseDbUrl(valid.dbUrl);
    const runner = this.opts.runner;
    if (!runner) {
      throw new ApiError(
        'state',
        'This engine cannot clone; run "clinic-sync clone --parent URL --code CODE --db URL --name NAME".',
      );
    }
    if (this.running) {
      throw new ApiError('state', 'A clone is already running; wait for it to finish.');
    }
    this.running = true;
    const first: CloneProgress = {
      phase: 'starting',
      tablesDone: 0,
      tablesTotal: 0,
      rowsDone: 0,
      bytesDone: 0,
      etaSeconds: null,
      error: null,
    };
    this.set(first);
    void runner
      .run(valid, (p) => {
        if (this.running) this.set({ ...p, error: null });
      })
      .then(
        () => {
          this.running = false;
          this.set({ ...(this.current ?? first), phase: 'done', etaSeconds: 0, error: null });
          this.opts.onDone?.();
        },
        (e: unknown) => {
          this.running = false;
          const { kind, message } = this.opts.explain(e);
          this.set({
            ...(this.current ?? first),
            phase: 'failed',
            etaSeconds: null,
            error: { kind, message },
          });
        },
      );
    return { ...first };
  }

  private set(p: CloneProgress): void {
    this.current = p;
    this.opts.report({ ...p });
  }
}
