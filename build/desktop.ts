/*
 * Builds what the installers pack (`npm run build:desktop`, before electron-builder):
 *   dist/main/index.js      the Electron main process (ESM), everything bundled but electron
 *   dist/preload/index.cjs  the sandboxed preload: one CommonJS file, it may require only electron
 *   dist/cli/clinic-sync.mjs  the clinic-sync command, for services and the uninstallers
 * The window's own files (renderer/dist) come from the renderer's vite build.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type InlineConfig } from 'vite';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function nodeBundle(
  entry: string,
  outDir: string,
  file: string,
  format: 'es' | 'cjs',
): InlineConfig {
  return {
    root,
    configFile: false,
    logLevel: 'warn',
    ssr: { noExternal: true, target: 'node' },
    build: {
      ssr: path.join(root, entry),
      outDir: path.join(root, outDir),
      emptyOutDir: true,
      target: 'node22',
      minify: false,
      sourcemap: true,
      rollupOptions: {
        external: ['electron'],
        output: { format, entryFileNames: file, codeSplitting: false },
      },
    },
  };
}

export const DESKTOP_BUILDS = [
  nodeBundle('src/main/index.ts', 'dist/main', 'index.js', 'es'),
  nodeBundle('src/preload/index.ts', 'dist/preload', 'index.cjs', 'cjs'),
  nodeBundle('build/cli-entry.ts', 'dist/cli', 'clinic-sync.mjs', 'es'),
];

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const config of DESKTOP_BUILDS) await build(config);
  process.stdout.write('Built dist/main, dist/preload and dist/cli.\n');
}
