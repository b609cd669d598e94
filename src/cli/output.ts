import { CommanderError } from 'commander';
import { isSyncError } from '../engine/errors.js';

/** Where a command writes: one call per line, no trailing newline. Tests may capture it. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

export const processIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

export const EXIT = { done: 0, failed: 1, usage: 2, unreachable: 3 } as const;

/** Squeezes a message onto one line, so every failure is one sentence on stderr. */
export function oneLine(message: string): string {
  return message.replace(/\s+/g, ' ').trim();
}

/** The exit code and the one sentence for anything a command threw. */
export function explainFailure(
  e: unknown,
  commandPath: string,
): { code: number; sentence: string } {
  if (isSyncError(e)) {
    const code =
      e.kind === 'usage' ? EXIT.usage : e.kind === 'unreachable' ? EXIT.unreachable : EXIT.failed;
    return { code, sentence: oneLine(e.message) };
  }
  if (e instanceof CommanderError) {
    return { code: EXIT.usage, sentence: commanderSentence(e, commandPath) };
  }
  const message = e instanceof Error ? e.message : String(e);
  return {
    code: EXIT.failed,
    sentence: oneLine(`ClinicSync stopped on an unexpected error: ${message}`),
  };
}

/** Commander's "error: unknown option '--x'" becomes a sentence that says what to do next. */
function commanderSentence(e: CommanderError, commandPath: string): string {
  const help = `run "clinic-sync${commandPath} --help" for usage`;
  if (e.code === 'commander.help') {
    return `"clinic-sync${commandPath}" needs a command; run "clinic-sync${commandPath} --help" to see them.`;
  }
  const what = oneLine(e.message.replace(/^error:\s*/, ''))
    .replace(/\.\s+(\p{Lu})/gu, (_m, c: string) => `, ${c.toLowerCase()}`)
    .replace(/\(Did you mean/, '(did you mean')
    .replace(/\.$/, '');
  return `${what.charAt(0).toUpperCase()}${what.slice(1)}; ${help}.`;
}
