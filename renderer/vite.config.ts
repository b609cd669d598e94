import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

/*
 * The window (DESIGN §2): built into renderer/dist, which `clinic-sync serve` serves on the admin
 * address and the desktop app loads from its own protocol. Relative asset paths work for both.
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The admin server's CSP allows the page's own files only: no inline scripts or styles.
    assetsInlineLimit: 0,
    sourcemap: false,
    // One bundle read from this computer's disk, never over a slow link: no need to split it.
    chunkSizeWarningLimit: 2048,
    target: 'es2022',
  },
  logLevel: 'warn',
});
