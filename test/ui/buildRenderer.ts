import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/*
 * vitest globalSetup of the UI tests: builds the window (renderer/dist) when it is missing or
 * older than its sources, so `npm test` on a fresh machine after `npm ci` tests what it serves.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DIST = path.join(ROOT, 'renderer', 'dist');
/** What the built window is made of: its own sources and the browser-safe API it bundles. */
const SOURCES = [
  path.join(ROOT, 'renderer', 'src'),
  path.join(ROOT, 'renderer', 'index.html'),
  path.join(ROOT, 'renderer', 'public'),
  path.join(ROOT, 'renderer', 'vite.config.ts'),
  path.join(ROOT, 'src', 'api'),
  path.join(ROOT, 'src', 'preload', 'page.ts'),
  path.join(ROOT, 'package-lock.json'),
];

function newest(p: string): number {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(p);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  let most = stat.mtimeMs;
  for (const name of fs.readdirSync(p)) most = Math.max(most, newest(path.join(p, name)));
  return most;
}

export function rendererIsStale(): boolean {
  const built = newest(path.join(DIST, 'index.html'));
  return built === 0 || SOURCES.some((s) => newest(s) > built);
}

export default async function buildRenderer(): Promise<void> {
  if (!rendererIsStale()) return;
  const { build } = await import('vite');
  // Built aside, then moved into place: a test run beside this one never sees half a build.
  const temp = `${DIST}.tmp-${process.pid}`;
  await build({
    configFile: path.join(ROOT, 'renderer', 'vite.config.ts'),
    build: { outDir: temp, emptyOutDir: true },
    logLevel: 'warn',
  });
  fs.rmSync(DIST, { recursive: true, force: true });
  fs.renameSync(temp, DIST);
}
