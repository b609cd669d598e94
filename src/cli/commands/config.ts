import { Command } from 'commander';
import {
  formatSetting,
  getSetting,
  leafKeys,
  setSetting,
  settableKeys,
} from '../../engine/config/settings.js';
import { homeOf, type CliContext } from '../context.js';
import { storeOpenmrsPassword } from '../../engine/openmrs/password.js';

/** `config get KEY` / `config set KEY VALUE`: the settings file only, no database. */
export function configCommand(ctx: CliContext): Command {
  const config = new Command('config').description("read or change this node's settings");

  config
    .command('get')
    .description('print one setting')
    .argument('<key>', `one of: ${leafKeys().join(', ')}`)
    .action((key: string, _opts: unknown, cmd: Command) => {
      const settings = homeOf(cmd, ctx).requireSettings();
      ctx.io.out(formatSetting(getSetting(settings, key)));
    });

  config
    .command('set')
    .description('change one setting (lists are comma-separated; booleans true/false/on/off)')
    .argument('<key>', `one of: ${settableKeys().join(', ')}`)
    .argument('<value>')
    .option(
      '--password-file <file>',
      "with openmrs.user: the file holding that OpenMRS user's password, kept as a secret",
    )
    .action((key: string, value: string, opts: { passwordFile?: string }, cmd: Command) => {
      const home = homeOf(cmd, ctx);
      const next = setSetting(home.requireSettings(), key, value);
      if (opts.passwordFile !== undefined) storeOpenmrsPassword(home, key, opts.passwordFile);
      home.save(next);
      ctx.io.out(`${key} is now ${formatSetting(getSetting(next, key)) || '(empty)'}.`);
    });

  return config;
}
