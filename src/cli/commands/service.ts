import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { SyncError } from '../../engine/errors.js';
import { currentLauncher, type CliLauncher } from '../../service/launcher.js';
import {
  definitionPath,
  installService,
  serviceDefinition,
  uninstallService,
  type Run,
  type ServicePlace,
} from '../../service/install.js';
import { sealedSecrets } from '../../service/sealed.js';
import { SYSTEMD_DIR, type ServiceSpec } from '../../service/systemd.js';
import { homeOf, type CliContext } from '../context.js';

/** What the command needs from this computer; tests pass their own. */
export interface ServiceHost {
  platform: NodeJS.Platform;
  unitDir: string;
  run: Run;
  launcher(): CliLauncher;
  /** WinSW shipped with the packaged app, beside its resources; null where there is none */
  defaultWinsw: string | null;
}

const runProgram: Run = (program, args) =>
  new Promise((resolve) => {
    execFile(program, args, { windowsHide: true }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });

export const realServiceHost: ServiceHost = {
  platform: process.platform,
  unitDir: SYSTEMD_DIR,
  run: runProgram,
  launcher: () => currentLauncher(),
  // The packaged app ships WinSW in its resources, beside the executable that runs this command.
  defaultWinsw: process.versions.electron
    ? path.join(path.dirname(process.execPath), 'resources', 'winsw', 'WinSW-x64.exe')
    : null,
};

interface SpecOptions {
  user?: string;
}

/**
 * `service print|install|uninstall`: runs this node as an OS service (systemd on Linux, a Windows
 * service through WinSW) so it syncs at night with nobody logged in. The desktop app attaches to
 * it. install and uninstall need root (sudo) or an administrator's command prompt.
 */
export function serviceCommand(ctx: CliContext, host: ServiceHost = realServiceHost): Command {
  const service = new Command('service').description(
    'run this node as an OS service (systemd, Windows service) that starts at boot',
  );

  function spec(cmd: Command, opts: SpecOptions): ServiceSpec {
    const home = homeOf(cmd, ctx);
    const settings = home.requireSettings();
    return {
      home: home.dir,
      nodeName: settings.name,
      launcher: host.launcher(),
      user: opts.user ?? ctx.env.SUDO_USER ?? os.userInfo().username,
    };
  }

  const userOption = new Option(
    '--user <name>',
    'Linux: the account the service runs as; it must own the home (default: the one who ran sudo)',
  );

  service
    .command('print')
    .description('print the service definition for this node, without installing it')
    .addOption(userOption)
    .addOption(
      new Option('--platform <platform>', 'whose definition to print').choices(['linux', 'win32']),
    )
    .action((opts: SpecOptions & { platform?: NodeJS.Platform }, cmd: Command) => {
      const text = serviceDefinition(opts.platform ?? host.platform, spec(cmd, opts));
      ctx.io.out(text.replace(/\r?\n$/, ''));
    });

  service
    .command('install')
    .description('install the service and start it (as root or administrator)')
    .addOption(userOption)
    .option('--winsw <file>', 'Windows: the WinSW executable to use')
    .action(async (opts: SpecOptions & { winsw?: string }, cmd: Command) => {
      const s = spec(cmd, opts);
      const sealed = sealedSecrets(homeOf(cmd, ctx));
      if (sealed.length) {
        throw new SyncError(
          'state',
          `The ClinicSync app keeps this node's ${sealed.join(', ')} in its user's keyring, which a service cannot open; first run "ClinicSync --prepare-service" as that user, then install the service.`,
        );
      }
      const file = await installService(place(opts.winsw), s);
      ctx.io.out(`Installed and started the ClinicSync service for ${s.home} (${file}).`);
    });

  service
    .command('uninstall')
    .description('stop and remove the service; the node itself stays')
    .action(async (_opts: unknown, cmd: Command) => {
      const home = homeOf(cmd, ctx);
      const removed = await uninstallService(place(), home.dir);
      ctx.io.out(
        removed
          ? `Removed the ClinicSync service (${definitionPath(place(), home.dir)}).`
          : `No ClinicSync service is installed for ${home.dir}.`,
      );
    });

  function place(winsw?: string): ServicePlace {
    return {
      platform: host.platform,
      unitDir: host.unitDir,
      run: host.run,
      winswExe: winsw ?? host.defaultWinsw,
    };
  }

  return service;
}
