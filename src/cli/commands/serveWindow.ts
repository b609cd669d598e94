import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveInfoPath } from '../../api/serveInfo.js';
import type { SetupHost } from '../../api/setupMode.js';
import type { Home } from '../../engine/config/home.js';
import type { CliContext } from '../context.js';
import { removeServeFile, writeServeFile } from './serve.js';

/*
 * What `serve` adds for the window (issue "The React window", item 1): the built renderer it
 * serves on the admin address, and setup mode on a computer with no node yet.
 */

/** The built window (`npm run build:renderer`), or null when it has not been built. */
export function rendererDir(): string | null {
  const dir = fileURLToPath(new URL('../../../renderer/dist', import.meta.url));
  return fs.existsSync(path.join(dir, 'index.html')) ? dir : null;
}

/**
 * Runs the admin API in setup mode until the wizard has made the node here, then returns the
 * host, whose address the running node takes over (SetupHost.attach). Returns null when SIGTERM
 * or SIGINT came first (nothing is left behind).
 */
export async function runSetupMode(
  ctx: CliContext,
  home: Home,
  admin: { host: string; port: number },
): Promise<SetupHost | null> {
  const { startSetupHost } = await import('../../api/setupMode.js');
  const { cloneRunner } = await import('../../engine/clone/clone.js');
  const host = await startSetupHost({
    home,
    host: admin.host,
    port: admin.port,
    staticDir: rendererDir() ?? undefined,
    cloneRunner: cloneRunner(home),
  });
  const infoFile = serveInfoPath(home);
  writeServeFile(home, infoFile, {
    pid: process.pid,
    listen: null,
    admin: host.url,
    startedAt: new Date().toISOString(),
  });
  ctx.io.err(
    `${new Date().toISOString()} info This computer holds no ClinicSync node yet: open the address "clinic-sync admin-url" prints to set it up.`,
  );
  ctx.io.out(`setup ${host.url}`);
  let onSignal: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    onSignal = resolve;
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  try {
    const made = await Promise.race([host.nodeReady.then(() => true), stopped.then(() => false)]);
    if (made) return host;
    await host.close();
    removeServeFile(infoFile);
    return null;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
