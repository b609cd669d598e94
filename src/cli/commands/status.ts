import { Command } from 'commander';
import type { NodeStatus } from '../../engine/node/types.js';
import type { FilesStatus } from '../../engine/files/status.js';
import type { OpenmrsRefreshStatus } from '../../engine/openmrs/refresh.js';
import { withNode, type CliContext } from '../context.js';

/** `status [--json]`: the node's state; --json prints exactly one JSON object (NodeStatus). */
export function statusCommand(ctx: CliContext): Command {
  return new Command('status')
    .description("show this node's state")
    .option('--json', 'print one JSON object instead of text')
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(async (opts: { json?: boolean; dbPasswordFile?: string }, cmd: Command) => {
      // While another engine runs this node, status reads without taking its lock.
      const status = await withNode(cmd, ctx, { ...opts, lock: 'prefer' }, (node) => node.status());
      if (opts.json) ctx.io.out(JSON.stringify(status));
      else for (const line of describeStatus(status)) ctx.io.out(line);
    });
}

export function describeStatus(s: NodeStatus): string[] {
  return [
    `Node "${s.name}" (${s.role}${s.parent ? `, parent ${s.parent}` : ''})`,
    `Capture: ${s.capturePaused ? 'paused (run "clinic-sync capture resume")' : 'running'}`,
    `Changes not yet acknowledged: ${s.pendingOut}`,
    `Last successful sync: ${s.lastSuccessAt ?? 'never'}`,
    `Last error: ${s.lastError ?? 'none'}`,
    `Journal size: ${formatBytes(s.journalBytes)}`,
    ...(s.openmrsRefresh ? [describeOpenmrsRefresh(s.openmrsRefresh)] : []),
    ...(s.complexObsFiles ? describeFiles(s.complexObsFiles) : []),
    ...(s.schemaWarning ? [`Tables waiting for an upgrade: ${s.schemaWarning}`] : []),
    ...(s.identifierWarning ? [`Patient identifiers: ${s.identifierWarning}`] : []),
  ];
}

function describeOpenmrsRefresh(r: OpenmrsRefreshStatus): string {
  if (r.problem) return r.problem;
  if (r.pending === 0) return `OpenMRS (${r.url}): up to date with what was received`;
  return `OpenMRS (${r.url}): ${r.pending} refreshes being sent`;
}

function describeFiles(f: FilesStatus): string[] {
  const parts = [
    ...(f.arriving ? [`${f.arriving} arriving (${formatBytes(f.bytesToCome)} to come)`] : []),
    ...(f.waitingForRecord ? [`${f.waitingForRecord} waiting for their record`] : []),
    ...(f.sending ? [`${f.sending} being sent`] : []),
  ];
  return [
    `Attached files: ${parts.length ? parts.join(', ') : 'all exchanged'}`,
    ...(f.problem ? [f.problem] : []),
  ];
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}
