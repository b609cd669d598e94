import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const MEASURED = path.join(here, 'measured.ts');

/** A `clinic-sync` process whose peak resident memory is read when it ends. */
export interface MeasuredProcess {
  child: ChildProcess;
  /** stdout lines so far */
  out: string[];
  err: string[];
  /** resolves when it ends: its exit code, peak RSS (bytes) and wall time (ms) */
  done: Promise<{ code: number; rssBytes: number; ms: number }>;
  /** resolves with the first stdout line matching re */
  line(re: RegExp): Promise<string>;
}

export function runClinicSync(
  args: string[],
  env: NodeJS.ProcessEnv,
  onErr?: (line: string) => void,
): MeasuredProcess {
  const rssFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cs-bench-rss-')), 'rss');
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', MEASURED, ...args], {
    env: { ...env, CLINIC_SYNC_BENCH_RSS_FILE: rssFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: string[] = [];
  const err: string[] = [];
  const waiting: { re: RegExp; resolve: (l: string) => void }[] = [];
  const lines = (stream: NodeJS.ReadableStream, into: string[], each?: (l: string) => void) => {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const l = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        into.push(l);
        each?.(l);
      }
    });
  };
  lines(child.stdout!, out, (l) => {
    for (const w of waiting.filter((w) => w.re.test(l))) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve(l);
    }
  });
  lines(child.stderr!, err, onErr);
  const done = new Promise<{ code: number; rssBytes: number; ms: number }>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      const ms = Date.now() - started;
      let rssBytes = 0;
      try {
        rssBytes = Number(fs.readFileSync(rssFile, 'utf8'));
      } catch {
        // killed before it could write it
      }
      fs.rmSync(path.dirname(rssFile), { recursive: true, force: true });
      resolve({ code: code ?? (signal ? 128 : 1), rssBytes, ms });
    });
  });
  return {
    child,
    out,
    err,
    done,
    line: (re) =>
      new Promise((resolve, reject) => {
        const seen = out.find((l) => re.test(l));
        if (seen !== undefined) return resolve(seen);
        waiting.push({ re, resolve });
        void done.then(() =>
          reject(new Error(`clinic-sync ${args.join(' ')} ended: ${err.slice(-3).join(' ')}`)),
        );
      }),
  };
}
