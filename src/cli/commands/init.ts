import { Command, Option } from 'commander';
import { SyncError } from '../../engine/errors.js';
import { dbUrlOf } from '../../engine/db/url.js';
import { DB_PASSWORD_SECRET, resolveDbTarget } from '../../engine/config/home.js';
import { defaultSettings, settingRule, type Settings } from '../../engine/config/settings.js';
import { homeOf, type CliContext } from '../context.js';

interface InitOptions {
  db: string;
  name: string;
  dbPasswordFile?: string;
  preset?: 'openmrs' | 'all';
}

/** `init --db URL --name NAME`: this home becomes the root node of a new tree on that database. */
export function initCommand(ctx: CliContext): Command {
  return new Command('init')
    .description('make a database the root of a ClinicSync tree: checks, tables, triggers')
    .requiredOption('--db <url>', 'the database, mysql://user[:password]@host[:port]/database')
    .requiredOption('--name <name>', "this node's name, e.g. the clinic's")
    .option('--db-password-file <file>', 'read the database password from this file')
    .addOption(
      new Option(
        '--preset <preset>',
        'which tables to sync: openmrs (all but those each server keeps for itself) or all; by default openmrs for an OpenMRS database',
      ).choices(['openmrs', 'all']),
    )
    .action(async (opts: InitOptions, cmd: Command) => {
      const home = homeOf(cmd, ctx);
      const existing = home.load();
      if (existing) {
        throw new SyncError(
          'state',
          `The folder ${home.dir} already holds the node "${existing.name}" (${existing.db}); choose another --home, or run "clinic-sync uninstall --db ${existing.db}" first.`,
        );
      }
      const { target, passwordSource } = resolveDbTarget(
        opts.db,
        { passwordFile: opts.dbPasswordFile, env: ctx.env },
        home,
      );
      const settings = newRootSettings(dbUrlOf(target), opts.name);
      // As the setup wizard does: the OpenMRS table choice for OpenMRS, and its files folder.
      const { openPool } = await import('../../engine/db/pool.js');
      const pool = openPool(target, { connectionLimit: 1 });
      try {
        const { holdsOpenmrs } = await import('../../engine/openmrs/presence.js');
        settings.tables.preset = opts.preset ?? ((await holdsOpenmrs(pool)) ? 'openmrs' : 'all');
      } catch {
        // An unreachable database is reported by the init below, in its own words.
      } finally {
        await pool.end().catch(() => undefined);
      }
      const { openmrsDataDirFor } = await import('../../engine/openmrs/runtimeProperties.js');
      settings.complexObs.dataDir = await openmrsDataDirFor(target);

      home.save(settings);
      if (passwordSource !== 'secret' && target.password) {
        home.writeSecret(DB_PASSWORD_SECRET, target.password);
      }
      try {
        const { SyncNode } = await import('../../engine/node/node.js');
        const node = await SyncNode.init({ db: target, name: settings.name, settings, home });
        await node.close();
        // The certificate `serve --https` presents; children trust it by its fingerprint.
        const { ensureCertificate } = await import('../../engine/transport/tls.js');
        await ensureCertificate(home, settings.name);
      } catch (e) {
        // A half-made node would block the next init; the database side is the engine's to undo.
        home.forgetNode();
        throw e;
      }
      ctx.io.out(
        `Database ${settings.db} is now the root node "${settings.name}" of a ClinicSync tree, syncing ${settings.tables.preset === 'openmrs' ? 'the OpenMRS tables (preset openmrs)' : 'every table (preset all)'}; its settings are in ${home.dir}.`,
      );
    });
}

function newRootSettings(db: string, name: string): Settings {
  try {
    return defaultSettings({ db, name, role: 'root' });
  } catch (e) {
    if (e instanceof SyncError) {
      throw new SyncError('usage', `--name ${settingRule('name')}, not "${name}".`, { cause: e });
    }
    throw e;
  }
}
