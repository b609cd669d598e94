import { execFile, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';
import { SERVER } from './db.js';

/** The real `clinic-sync` command, as installed (runs the TypeScript through tsx). */
export const BIN = fileURLToPath(new URL('../../bin/clinic-sync.js', import.meta.url));

/** What a command printed, and how it exited. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** What `main` printed, line by line, and its exit code. */
export interface MainRun {
  code: number;
  out: string[];
  err: string[];
}

/** The test database's password, and no home inherited from whoever runs the tests. */
export function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, MYSQL_PWD: SERVER.password, ...extra };
  if (!('CLINIC_SYNC_HOME' in extra)) delete e.CLINIC_SYNC_HOME;
  return e;
}

/** Runs `clinic-sync ARGS` in a process of its own, as a person or a script would. */
export function runCli(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: cliEnv(extra) }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Runs the command's `main` in this process (quicker; the same parsing and output). */
export async function runMain(args: string[]): Promise<MainRun> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    args,
    { out: (l) => out.push(l), err: (l) => err.push(l) },
    { ...process.env, MYSQL_PWD: SERVER.password },
  );
  return { code, out, err };
}

/** A TCP port free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A `clinic-sync serve` process, started by startServe. */
export interface Served {
  proc: ChildProcess;
  /** the address of its `listening` line */
  url: string;
  stdout: () => string;
  stderr: () => string;
  /** its exit code (null: killed by a signal) once it exits */
  exited: Promise<number | null>;
}

/**
 * Starts `clinic-sync --home HOME serve ARGS` (ARGS default to free ports on 127.0.0.1) and waits
 * for its `listening URL` line; fails with what it printed if it exits first.
 */
export async function startServe(
  home: string,
  args: string[] = ['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Served> {
  const proc = spawn(process.execPath, [BIN, '--home', home, 'serve', ...args], {
    env: opts.env ?? cliEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`serve did not start: ${err}`)),
      opts.timeoutMs ?? 60_000,
    );
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^listening (\S+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then((code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
  return { proc, url, stdout: () => out, stderr: () => err, exited };
}
