import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Bench, BenchFigure, BenchResult } from './types.js';

/*
 * `npm run bench [-- --json] [-- --only NAME]`: runs every benchmark module in bench/benches/
 * (each exports `bench`, see types.ts), or only the one named. Progress goes to stderr; the
 * results to stdout, as a table or, with --json, as one JSON object:
 *   {"benches": [{"name", "figures": [{label, value, unit, baseline?, ratio?, target?, met?}], "notes"}],
 *    "ok": true|false}
 * Exit 0 when every target was met, 1 when one was missed or a bench failed, 2 on bad arguments.
 * Benchmarks are not tests: `npm test` never runs them.
 */

interface Args {
  json: boolean;
  only: string | null;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { json: false, only: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') args.json = true;
    else if (a === '--only' && argv[i + 1] !== undefined) args.only = argv[++i]!;
    else if (a.startsWith('--only=')) args.only = a.slice('--only='.length);
    else throw new Error(`Unknown argument "${a}"; use --json and --only NAME.`);
  }
  return args;
}

/** Every module in bench/benches/ that exports a bench, by name. */
async function discover(): Promise<Bench[]> {
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'benches');
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .sort();
  const benches: Bench[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(path.join(dir, f)).href)) as { bench?: Bench };
    if (mod.bench) benches.push(mod.bench);
  }
  const names = new Set<string>();
  for (const b of benches) {
    if (names.has(b.name)) throw new Error(`Two benches are named "${b.name}".`);
    names.add(b.name);
  }
  return benches;
}

function formatFigure(f: BenchFigure): string {
  const value = `${round(f.value)} ${f.unit}`;
  const base = f.baseline ? `   ${f.baseline.label}: ${round(f.baseline.value)} ${f.unit}` : '';
  const ratio = f.ratio !== undefined ? `   ratio ${f.ratio.toFixed(2)}` : '';
  const target = f.target !== undefined ? `   target ${f.target}: ${f.met ? 'met' : 'MISSED'}` : '';
  return `  ${f.label}: ${value}${base}${ratio}${target}`;
}

function round(n: number): string {
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

async function mainBench(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  const all = await discover();
  const chosen = args.only === null ? all : all.filter((b) => b.name === args.only);
  if (!chosen.length) {
    process.stderr.write(
      `There is no bench named "${args.only}"; there are: ${all.map((b) => b.name).join(', ')}.\n`,
    );
    return 2;
  }
  const results: (BenchResult & { error?: string })[] = [];
  let ok = true;
  for (const b of chosen) {
    const log = (line: string) => process.stderr.write(`[${b.name}] ${line}\n`);
    log(b.description);
    try {
      const r = await b.run({ log, env: process.env });
      results.push(r);
      if (r.figures.some((f) => f.met === false)) ok = false;
      if (!args.json) {
        process.stdout.write(`${r.name}\n${r.figures.map(formatFigure).join('\n')}\n`);
        for (const n of r.notes) process.stdout.write(`  (${n})\n`);
      }
    } catch (e) {
      ok = false;
      const error = e instanceof Error ? e.message : String(e);
      results.push({ name: b.name, figures: [], notes: [], error });
      log(`failed: ${error}`);
    }
  }
  if (args.json) process.stdout.write(`${JSON.stringify({ benches: results, ok })}\n`);
  return ok ? 0 : 1;
}

process.exitCode = await mainBench();
