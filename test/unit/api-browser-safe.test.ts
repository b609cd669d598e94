import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/*
 * The renderer (a browser page, or the Electron window with no Node) loads these files: they may
 * import engine modules for their types only, and nothing from Node.
 */
const BROWSER_FILES = ['types.ts', 'routes.ts', 'sse.ts', 'httpClient.ts'];

describe('the API files a browser loads', () => {
  for (const file of BROWSER_FILES) {
    it(`${file} imports nothing from Node and only types from the engine`, () => {
      const text = fs.readFileSync(
        fileURLToPath(new URL(`../../src/api/${file}`, import.meta.url)),
        'utf8',
      );
      const imports = [...text.matchAll(/^(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)];
      for (const [statement, from] of imports) {
        expect(from, statement).not.toMatch(/^node:|^(fs|path|http|net|crypto|os)$/);
        if (!from!.startsWith('./')) expect(statement, statement).toMatch(/^(import|export) type /);
      }
      expect(text).not.toMatch(/\bBuffer\b|\bprocess\./);
    });
  }
});
