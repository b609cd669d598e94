import path from 'node:path';

/** How to run the `clinic-sync` command on this computer, as a service manager starts it. */
export interface CliLauncher {
  /** the program: node, or the packaged app's executable running as Node */
  program: string;
  /** the arguments before clinic-sync's own: the script that runs the CLI */
  args: string[];
  /** environment the program needs (ELECTRON_RUN_AS_NODE for the packaged app) */
  env: Record<string, string>;
}

/**
 * The launcher of the running `clinic-sync`: node with bin/clinic-sync.js in a source checkout or
 * an npm install, or the packaged app's executable in its Node mode with the bundled CLI script.
 */
export function currentLauncher(
  proc: Pick<NodeJS.Process, 'execPath' | 'argv' | 'versions'> = process,
): CliLauncher {
  const script = proc.argv[1];
  if (!script) throw new Error('clinic-sync was started without its script.');
  return {
    program: proc.execPath,
    args: [path.resolve(script)],
    env: proc.versions.electron ? { ELECTRON_RUN_AS_NODE: '1' } : {},
  };
}

/** The full command line that runs the node headless: `clinic-sync serve --home HOME`. */
export function serveCommandLine(launcher: CliLauncher, home: string): string[] {
  return [launcher.program, ...launcher.args, 'serve', '--home', home];
}
