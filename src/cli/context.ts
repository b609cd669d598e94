import type { Command } from 'commander';
import { Home, resolveDbTarget, resolveHome } from '../engine/config/home.js';
import type { Settings } from '../engine/config/settings.js';
import type { LockMode, SyncNode } from '../engine/node/node.js';
import type { CliIo } from './output.js';

export interface CliContext {
  io: CliIo;
  env: NodeJS.ProcessEnv;
}

/** The node's home folder, from the global --home option, CLINIC_SYNC_HOME or the OS default. */
export function homeOf(cmd: Command, ctx: CliContext): Home {
  const flag = cmd.optsWithGlobals<{ home?: string }>().home;
  return new Home(resolveHome(flag, ctx.env));
}

/**
 * Opens the initialised node in this home, runs fn, and closes it. The engine is imported lazily
 * (here, in init and in uninstall), so `config` and `--help` never load the database driver.
 */
export async function withNode<T>(
  cmd: Command,
  ctx: CliContext,
  opts: { dbPasswordFile?: string; lock?: LockMode },
  fn: (node: SyncNode, settings: Settings) => Promise<T>,
): Promise<T> {
  const home = homeOf(cmd, ctx);
  const settings = home.requireSettings();
  const { target } = resolveDbTarget(
    undefined,
    { passwordFile: opts.dbPasswordFile, env: ctx.env },
    home,
  );
  const { SyncNode } = await import('../engine/node/node.js');
  const node = await SyncNode.open({
    db: target,
    settings,
    home,
    lock: opts.lock ?? 'wait',
    purpose: cmd.name(),
  });
  try {
    return await fn(node, settings);
  } finally {
    await node.close();
  }
}
