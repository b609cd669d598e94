import path from 'node:path';
import type { ServiceSpec } from './systemd.js';

/** The Windows service's id (what `sc query ClinicSync` names). */
export const WINDOWS_SERVICE_ID = 'ClinicSync';
/** WinSW's executable and its XML share this name, in the node's home under service\. */
export const WINSW_NAME = 'clinic-sync-service';

/**
 * One argument of a Windows command line, quoted so CommandLineToArgvW (and Node) read it back
 * as it was: quotes around anything with a space or a quote, backslashes doubled before a quote.
 */
export function windowsArg(arg: string): string {
  if (arg !== '' && !/[\s"]/.test(arg)) return arg;
  let out = '"';
  let slashes = 0;
  for (const ch of arg) {
    if (ch === '\\') {
      slashes++;
      continue;
    }
    out += '\\'.repeat(ch === '"' ? slashes * 2 + 1 : slashes) + ch;
    slashes = 0;
  }
  return `${out}${'\\'.repeat(slashes * 2)}"`;
}

function xml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/**
 * The WinSW definition that runs the node as a Windows service (LocalSystem, automatic start,
 * delayed so the database server starts first), restarted after a failure. WinSW stops it with
 * Ctrl+C, on which `serve` finishes a sync in progress. Logs roll in the home's logs folder.
 */
export function winswXml(spec: Omit<ServiceSpec, 'user'>): string {
  const [program, ...args] = [spec.launcher.program, ...spec.launcher.args];
  const argLine = [...args, 'serve', '--home', spec.home].map(windowsArg).join(' ');
  const env = Object.entries(spec.launcher.env).map(
    ([name, value]) => `  <env name="${xml(name)}" value="${xml(value)}"/>`,
  );
  return [
    '<!-- Written by "clinic-sync service install"; "clinic-sync service uninstall" removes it. -->',
    '<service>',
    `  <id>${WINDOWS_SERVICE_ID}</id>`,
    '  <name>ClinicSync</name>',
    `  <description>${xml(`ClinicSync node ${spec.nodeName}: keeps the clinic database in sync.`)}</description>`,
    `  <executable>${xml(program!)}</executable>`,
    `  <arguments>${xml(argLine)}</arguments>`,
    ...env,
    `  <workingdirectory>${xml(spec.home)}</workingdirectory>`,
    '  <startmode>Automatic</startmode>',
    '  <delayedAutoStart>true</delayedAutoStart>',
    '  <onfailure action="restart" delay="10 sec"/>',
    '  <resetfailure>1 hour</resetfailure>',
    '  <stoptimeout>30 sec</stoptimeout>',
    `  <logpath>${xml(path.win32.join(spec.home, 'logs'))}</logpath>`,
    '  <log mode="roll-by-size">',
    '    <sizeThreshold>10240</sizeThreshold>',
    '    <keepFiles>8</keepFiles>',
    '  </log>',
    '</service>',
    '',
  ].join('\r\n');
}

/** Reads the home back from an installed definition. */
export function homeOfWinsw(text: string): string | null {
  const args = /<arguments>([^<]*)<\/arguments>/.exec(text)?.[1];
  if (args === undefined) return null;
  const unescaped = args
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
  const words = splitWindowsArgs(unescaped);
  const i = words.indexOf('--home');
  return i >= 0 ? (words[i + 1] ?? null) : null;
}

/** CommandLineToArgvW's rules, for reading back what windowsArg wrote. */
export function splitWindowsArgs(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  let slashes = 0;
  for (const ch of line) {
    if (ch === '\\') {
      slashes++;
      inWord = true;
      continue;
    }
    if (ch === '"') {
      cur += '\\'.repeat(Math.floor(slashes / 2));
      if (slashes % 2 === 1) cur += '"';
      else quoted = !quoted;
      slashes = 0;
      inWord = true;
      continue;
    }
    cur += '\\'.repeat(slashes);
    slashes = 0;
    if (/\s/.test(ch) && !quoted) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    cur += ch;
    inWord = true;
  }
  cur += '\\'.repeat(slashes);
  if (inWord) words.push(cur);
  return words;
}
