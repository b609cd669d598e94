import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { SERVER } from '../helpers/db.js';

/*
 * What the window's tests drive: real `clinic-sync serve` processes (each node in its own home)
 * and Debian's Chromium through playwright-core, with screenshots for people to look at.
 */

const BIN = fileURLToPath(new URL('../../bin/clinic-sync.js', import.meta.url));
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Where the screenshots go (git-ignored); the README shows two of them from docs/. */
export const SCREENS_DIR = fileURLToPath(new URL('../../test-output/screens', import.meta.url));
/** A common clinic laptop screen. */
export const VIEWPORT = { width: 1366, height: 768 };

function env(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, MYSQL_PWD: SERVER.password, ...extra };
  delete e.CLINIC_SYNC_HOME;
  return e;
}

/** Runs the real command and returns its output; rejects on a non-zero exit. */
export function cli(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { env: env(extra) }, (err, stdout, stderr) => {
      if (err) reject(new Error(`clinic-sync ${args.join(' ')} failed: ${stderr}`));
      else resolve(stdout);
    });
  });
}

export interface Served {
  proc: ChildProcess;
  home: string;
  output(): string;
  /** resolves with the line's address once stdout has printed `WORD http(s)://…` */
  line(word: 'listening' | 'setup'): Promise<string>;
  /** the admin page's address with its token (`clinic-sync admin-url`) */
  adminUrl(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts `clinic-sync serve` on free ports. */
export function serve(home: string, args: string[] = [], extra: NodeJS.ProcessEnv = {}): Served {
  const proc = spawn(
    process.execPath,
    [BIN, '--home', home, 'serve', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', ...args],
    { env: env(extra), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  const waiters: (() => void)[] = [];
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    for (const w of waiters.splice(0)) w();
  });
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c)));
  return {
    proc,
    home,
    output: () => `${out}\n${err}`,
    line(word) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`serve printed no "${word}" line: ${out} ${err}`)),
          90_000,
        );
        const check = () => {
          const m = new RegExp(`^${word} (https?://\\S+)$`, 'm').exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          } else waiters.push(check);
        };
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`serve exited with ${code}: ${err}`));
        });
        check();
      });
    },
    async adminUrl() {
      const text = await cli(['--home', home, 'admin-url']);
      return text.trim().split('\n').at(-1)!;
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * Starts Debian's Chromium, waiting a while for it (CHROMIUM_WAIT_SECONDS, default 120) where a
 * package install may still be under way.
 */
export async function launchChromium(): Promise<Browser> {
  const until = Date.now() + Number(process.env.CHROMIUM_WAIT_SECONDS ?? 120) * 1000;
  while (!fs.existsSync(CHROMIUM)) {
    if (Date.now() > until) {
      throw new Error(
        `The UI tests need Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH.`,
      );
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** Saves a screenshot of the page as test-output/screens/NAME.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(SCREENS_DIR, { recursive: true });
  const file = path.join(SCREENS_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
