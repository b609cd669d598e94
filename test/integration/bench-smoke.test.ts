import { describe, expect, it } from 'vitest';
import type { Bench, BenchResult } from '../../bench/types.js';

/*
 * Issue 11's benches (`npm run bench`) at a tiny size (CLINIC_SYNC_BENCH_SMOKE=1), only to prove
 * each still runs end to end and reports a figure beside its baseline; their figures at this
 * size mean nothing, so no target is asserted.
 */

const env = { ...process.env, CLINIC_SYNC_BENCH_SMOKE: '1' };

async function run(name: string): Promise<BenchResult> {
  const mod = (await import(`../../bench/benches/${name}.ts`)) as { bench: Bench };
  expect(mod.bench.name).toBe(name);
  const result = await mod.bench.run({ log: () => undefined, env });
  expect(result.name).toBe(name);
  expect(result.figures.length).toBeGreaterThan(0);
  for (const f of result.figures) {
    expect(Number.isFinite(f.value), f.label).toBe(true);
    if (f.baseline) {
      expect(f.baseline.value, f.label).toBeGreaterThan(0);
      expect(f.ratio, f.label).toBeCloseTo(f.value / f.baseline.value, 1);
    }
  }
  return result;
}

describe('the benches of issue 11 run at a tiny size', () => {
  it('wire: bytes counted on the socket beside the CSV baseline, and a throttled sync', async () => {
    const r = await run('wire');
    const [perRecord, bodies, slow] = r.figures;
    expect(perRecord!.value).toBeGreaterThan(bodies!.value);
    expect(slow!.unit).toBe('s');
  }, 120_000);

  it('apply: the parent applies a child batch beside a multi-row load', async () => {
    const r = await run('apply');
    const [apply, floor] = r.figures;
    expect(apply!.value).toBeGreaterThan(0);
    // the floor loads the same rows and more, beside the same baseline
    expect(floor!.baseline).toEqual(apply!.baseline);
    expect(floor!.value).toBeGreaterThan(floor!.baseline!.value);
  }, 120_000);

  it('capture: the same writes with and without the triggers', async () => {
    const r = await run('capture');
    expect(r.figures).toHaveLength(2);
  }, 120_000);

  it('latency: a new record reaches the parent, in the engine and with the command', async () => {
    const r = await run('latency');
    expect(r.figures[0]!.met).toBeTypeOf('boolean');
  }, 120_000);

  it('children: simulated children exchange at once without errors', async () => {
    const r = await run('children');
    const errors = r.figures.find((f) => f.label === 'errors')!;
    expect(errors.value).toBe(0);
  }, 120_000);
});
