import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Integration tests share one MariaDB server; each makes its own databases.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: { name: 'engine', include: ['test/**/*.test.ts'], exclude: ['test/ui/**'] },
      },
      {
        // The window: component tests, and Chromium driving the built renderer (built first,
        // when missing or stale, by the global setup).
        extends: true,
        plugins: [react()],
        test: {
          name: 'ui',
          include: ['test/ui/**/*.test.ts'],
          globalSetup: ['test/ui/buildRenderer.ts'],
        },
      },
    ],
  },
});
