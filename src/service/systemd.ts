import { serveCommandLine, type CliLauncher } from './launcher.js';

/** The unit's name: one node per computer runs as a service. */
export const SYSTEMD_UNIT = 'clinic-sync.service';
export const SYSTEMD_DIR = '/etc/systemd/system';

export interface ServiceSpec {
  /** the node's home folder (absolute) */
  home: string;
  /** the node's name, for the description */
  nodeName: string;
  launcher: CliLauncher;
  /** the account it runs as (Linux): the owner of the home, so it reads its 0600 secrets */
  user: string;
}

/**
 * One word of an ExecStart line: systemd splits on spaces, honours double quotes with C-style
 * escapes, and expands % specifiers and $ variables, which must be doubled to stay literal.
 */
export function systemdWord(word: string): string {
  const literal = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (/^[A-Za-z0-9_@%+=:,./$-]+$/.test(literal)) return literal;
  return `"${literal.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function envValue(name: string, value: string): string {
  return `"${`${name}=${value}`.replace(/%/g, '%%').replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * The systemd unit that runs the node headless at boot, with nobody logged in: `clinic-sync
 * serve --home HOME` as the home's owner, restarted after a failure or a power cut, after the
 * network and the database server, stopped with SIGTERM (serve then finishes a sync in progress).
 */
export function systemdUnit(spec: ServiceSpec): string {
  const exec = serveCommandLine(spec.launcher, spec.home).map(systemdWord).join(' ');
  const env = Object.entries(spec.launcher.env).map(([k, v]) => `Environment=${envValue(k, v)}`);
  const description = `ClinicSync node ${spec.nodeName} (keeps the clinic database in sync)`;
  return [
    '# Written by "clinic-sync service install"; "clinic-sync service uninstall" removes it.',
    '[Unit]',
    `Description=${description.replace(/%/g, '%%')}`,
    'Wants=network-online.target',
    'After=network-online.target mariadb.service mysql.service',
    '',
    '[Service]',
    'Type=simple',
    `User=${spec.user}`,
    `ExecStart=${exec}`,
    ...env,
    `WorkingDirectory=${systemdWord(spec.home)}`,
    'Restart=always',
    'RestartSec=10',
    'KillSignal=SIGTERM',
    'TimeoutStopSec=30',
    'UMask=0077',
    'NoNewPrivileges=yes',
    'PrivateTmp=yes',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** Reads the home back from an installed unit (the desktop app attaches to that node). */
export function homeOfUnit(unit: string): string | null {
  const line = /^ExecStart=(.*)$/m.exec(unit)?.[1];
  if (!line) return null;
  const words = splitSystemdWords(line);
  const i = words.indexOf('--home');
  return i >= 0 ? (words[i + 1] ?? null) : null;
}

function splitSystemdWords(line: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of line.matchAll(re)) {
    const raw = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!;
    words.push(raw.replace(/%%/g, '%').replace(/\$\$/g, '$'));
  }
  return words;
}
