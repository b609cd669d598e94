/*
 * The shape every benchmark module has (bench/benches/*.ts): `npm run bench` finds the modules,
 * runs each (or the one named by --only), prints each figure beside its baseline measured in the
 * same run, and with --json prints one JSON object instead.
 */

/** One measured figure, with the baseline it is compared to where it has one. */
export interface BenchFigure {
  /** what was measured, like "clone time" */
  label: string;
  value: number;
  /** "s", "MB", "rows/s", … */
  unit: string;
  /** the same work done the usual way, measured in the same run */
  baseline?: { label: string; value: number };
  /** value / baseline.value, rounded to two decimals */
  ratio?: number;
  /** the target in words, like "≤ 1.00× the dump pipeline" */
  target?: string;
  /** whether the target was met (absent where the figure has no target) */
  met?: boolean;
}

export interface BenchResult {
  name: string;
  figures: BenchFigure[];
  /** what was measured on, in a few words each (sizes, rows) */
  notes: string[];
}

export interface BenchContext {
  /** a progress line on stderr (stdout is for the results) */
  log(line: string): void;
  env: NodeJS.ProcessEnv;
}

export interface Bench {
  /** short and unique, for --only NAME */
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<BenchResult>;
}

/** A figure compared to its baseline: the ratio, and whether it is within `maxRatio`. */
export function compared(
  label: string,
  value: number,
  unit: string,
  baseline: { label: string; value: number },
  maxRatio?: number,
): BenchFigure {
  const ratio = baseline.value > 0 ? Math.round((value / baseline.value) * 100) / 100 : 0;
  return {
    label,
    value,
    unit,
    baseline,
    ratio,
    ...(maxRatio !== undefined
      ? {
          target: `≤ ${maxRatio.toFixed(2)}× ${baseline.label}`,
          met: value <= baseline.value * maxRatio,
        }
      : {}),
  };
}
