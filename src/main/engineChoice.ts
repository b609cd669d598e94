import type { Home } from '../engine/config/home.js';
import { ADMIN_TOKEN_SECRET } from '../api/adminServer.js';
import { adminBaseUrl, processRuns, readServeInfo, type ServeInfo } from '../api/serveInfo.js';

/*
 * One engine per node (DESIGN §9): before running the node itself, the app looks for an engine
 * that already runs it (the OS service, or a `clinic-sync serve`), announced by serve.json in the
 * node's home, and attaches to it through its admin API when it answers.
 */

export type EngineChoice =
  /** the home holds no node yet: the window shows the setup wizard */
  | { kind: 'setup' }
  /** another process runs the node and its admin API answers: use it */
  | { kind: 'attach'; baseUrl: string; token: string; pid: number }
  /** nobody runs it: this app runs the engine itself */
  | { kind: 'start' };

export interface ChoiceProbe {
  readServeInfo(home: Home): ServeInfo | null;
  processRuns(pid: number): boolean;
  /** whether the admin API at this address answers with this token */
  answers(baseUrl: string, token: string): Promise<boolean>;
  /** this process's id (its own serve.json is never something to attach to) */
  pid: number;
}

export function realProbe(answers: ChoiceProbe['answers']): ChoiceProbe {
  return { readServeInfo, processRuns, answers, pid: process.pid };
}

/**
 * Attach where a live engine answers; otherwise start one. A serve.json left by an engine that
 * died, or one that does not answer, leads to "start": the node's database lock then decides,
 * so a service that is only slow to answer makes this app wait for it, never run beside it.
 */
export async function chooseEngine(
  home: Home,
  isNode: boolean,
  probe: ChoiceProbe,
): Promise<EngineChoice> {
  if (!isNode) return { kind: 'setup' };
  const info = probe.readServeInfo(home);
  if (info === null || info.pid === probe.pid || !probe.processRuns(info.pid)) {
    return { kind: 'start' };
  }
  const baseUrl = info.admin === null ? null : adminBaseUrl(info.admin);
  const token = home.readSecret(ADMIN_TOKEN_SECRET)?.trim() ?? '';
  if (baseUrl === null || token === '') return { kind: 'start' };
  return (await probe.answers(baseUrl, token))
    ? { kind: 'attach', baseUrl, token, pid: info.pid }
    : { kind: 'start' };
}
