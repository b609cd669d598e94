/**
 * CLINIC_SYNC_BENCH_SMOKE=1 runs every bench of issue 11 at a tiny size, only to prove it works
 * (test/integration/bench-smoke.test.ts); its figures mean nothing.
 */
export function isSmoke(env: NodeJS.ProcessEnv): boolean {
  return env.CLINIC_SYNC_BENCH_SMOKE === '1';
}
