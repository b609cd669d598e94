import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ADMIN_TOKEN_SECRET, adminToken, startAdminServer } from '../../src/api/adminServer.js';
import { createHttpApi } from '../../src/api/httpClient.js';
import { SERVE_INFO_FILE } from '../../src/api/serveInfo.js';
import type { SyncApi } from '../../src/api/types.js';
import { Home } from '../../src/engine/config/home.js';
import { SyncError } from '../../src/engine/errors.js';
import { chooseEngine, realProbe, type EngineChoice } from '../../src/main/engineChoice.js';
import { EngineSupervisor, NOT_SET_UP } from '../../src/main/engineSupervisor.js';
import { SwitchableApi } from '../../src/main/switchableApi.js';
import { StubEngine } from '../helpers/electronStub.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function home(): Home {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-main-engine-'));
  cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return new Home(dir);
}

function writeServeInfo(h: Home, info: { pid: number; admin: string | null }): void {
  fs.writeFileSync(
    path.join(h.dir, SERVE_INFO_FILE),
    JSON.stringify({ ...info, listen: 'http://0.0.0.0:8750' }),
  );
}

/** A process that runs until the test ends: plays the service's pid. */
function otherProcess(): number {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  cleanup.push(() => void child.kill());
  return child.pid!;
}

/** A real admin API over a stub engine: what a running service answers with. */
async function runningAdmin(h: Home, token = adminToken(h)): Promise<string> {
  const engine = new StubEngine();
  const server = await startAdminServer({ api: engine.api, host: '127.0.0.1', port: 0, token });
  cleanup.push(() => server.close());
  return server.url;
}

const answersOverHttp = (baseUrl: string, token: string) =>
  createHttpApi({ baseUrl, token })
    .getStatus()
    .then(
      () => true,
      () => false,
    );

describe('attach to a running engine, or start one', () => {
  it('attaches where serve.json names a live process whose admin API answers', async () => {
    const h = home();
    const url = await runningAdmin(h);
    const pid = otherProcess();
    writeServeInfo(h, { pid, admin: url });
    const choice = await chooseEngine(h, true, realProbe(answersOverHttp));
    expect(choice).toEqual({ kind: 'attach', baseUrl: url, token: adminToken(h), pid });
  });

  it('starts where nobody runs the node, or serve.json is stale, or the engine does not answer', async () => {
    const h = home();
    const probe = realProbe(answersOverHttp);
    expect(await chooseEngine(h, true, probe)).toEqual({ kind: 'start' });

    // The process that wrote it died (a power cut).
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => dead.on('exit', r));
    writeServeInfo(h, { pid: dead.pid!, admin: await runningAdmin(h) });
    expect(await chooseEngine(h, true, probe)).toEqual({ kind: 'start' });

    // This app's own serve.json is never something to attach to.
    writeServeInfo(h, { pid: process.pid, admin: await runningAdmin(h) });
    expect(await chooseEngine(h, true, probe)).toEqual({ kind: 'start' });

    // Alive, but its admin API refuses our token (another node's engine, say).
    const pid = otherProcess();
    writeServeInfo(h, {
      pid,
      admin: await runningAdmin(h, 'someone-elses-token-0123456789abcdef'),
    });
    expect(await chooseEngine(h, true, probe)).toEqual({ kind: 'start' });

    // Alive, without an admin address.
    writeServeInfo(h, { pid, admin: null });
    expect(await chooseEngine(h, true, probe)).toEqual({ kind: 'start' });
  });

  it('asks for setup where the home holds no node', async () => {
    const h = home();
    writeServeInfo(h, { pid: otherProcess(), admin: await runningAdmin(h) });
    expect(await chooseEngine(h, false, realProbe(answersOverHttp))).toEqual({ kind: 'setup' });
  });

  it('never attaches without the admin token', async () => {
    const h = home();
    const url = await runningAdmin(h);
    fs.rmSync(path.join(h.secretsDir, ADMIN_TOKEN_SECRET));
    writeServeInfo(h, { pid: otherProcess(), admin: url });
    const answers = vi.fn(async () => true);
    expect(await chooseEngine(h, true, realProbe(answers))).toEqual({ kind: 'start' });
    expect(answers).not.toHaveBeenCalled();
  });
});

describe('the engine supervisor', () => {
  function supervisor(
    choices: EngineChoice[],
    startOwn: () => Promise<{ api: SyncApi; close(): Promise<void> }>,
  ) {
    const switchable = new SwitchableApi();
    const problems: (string | null)[] = [];
    const attached = new StubEngine();
    const attachCalls: string[] = [];
    const sup = new EngineSupervisor({
      switchable,
      retryMs: 15_000,
      onProblem: (p) => problems.push(p),
      choose: async () => choices.shift() ?? { kind: 'start' },
      startOwn,
      attach: (baseUrl) => {
        attachCalls.push(baseUrl);
        return attached.api;
      },
    });
    cleanup.push(() => sup.close());
    return { sup, switchable, problems, attached, attachCalls };
  }

  it('attaches, and runs its own engine once the attached one stays lost', async () => {
    vi.useFakeTimers();
    const own = new StubEngine();
    own.node = { pendingOut: 9 };
    let started = 0;
    let closed = 0;
    const { sup, switchable, attached, attachCalls } = supervisor(
      [{ kind: 'attach', baseUrl: 'http://127.0.0.1:8751', token: 't', pid: 42 }],
      async () => {
        started++;
        return { api: own.api, close: async () => void closed++ };
      },
    );
    await sup.refresh();
    expect(sup.mode).toBe('attach');
    expect(attachCalls).toEqual(['http://127.0.0.1:8751']);
    expect(switchable.current).toBe(attached.api);

    // The service stops: its event stream is lost, and stays lost.
    attached.emit({ type: 'connection', connected: false });
    await vi.advanceTimersByTimeAsync(10_000);
    attached.emit({ type: 'connection', connected: true });
    await vi.advanceTimersByTimeAsync(20_000);
    expect(sup.mode).toBe('attach');
    attached.emit({ type: 'connection', connected: false });
    await vi.advanceTimersByTimeAsync(15_000);
    expect(sup.mode).toBe('start');
    expect(started).toBe(1);
    expect((await switchable.api.getStatus()).pendingOut).toBe(9);
    await sup.close();
    expect(closed).toBe(1);
    await expect(switchable.api.getStatus()).rejects.toMatchObject({ kind: 'state' });
  });

  it('says why when the node is locked by another engine, and tries again', async () => {
    vi.useFakeTimers();
    let tries = 0;
    const own = new StubEngine();
    const { sup, problems, switchable } = supervisor([], async () => {
      tries++;
      if (tries === 1) {
        throw new SyncError(
          'locked',
          'Another ClinicSync engine (clinic-sync serve, process 4242) is using this node; stop it or let it finish, then try again.',
        );
      }
      return { api: own.api, close: async () => undefined };
    });
    await sup.refresh();
    expect(problems).toEqual([
      'Another ClinicSync engine (clinic-sync serve, process 4242) is using this node; ClinicSync shows it as soon as it answers.',
    ]);
    await expect(switchable.api.syncNow()).rejects.toMatchObject({
      kind: 'state',
      message: problems[0],
    });
    await vi.advanceTimersByTimeAsync(15_000);
    expect(tries).toBe(2);
    expect(sup.mode).toBe('start');
    expect(problems.at(-1)).toBeNull();
  });

  it('offers the setup api on a home with no node, and takes the node once it is made', async () => {
    const own = new StubEngine();
    const switchable = new SwitchableApi();
    const setup = new StubEngine();
    let ready: () => void = () => undefined;
    const choices: EngineChoice[] = [{ kind: 'setup' }];
    const problems: (string | null)[] = [];
    const sup = new EngineSupervisor({
      switchable,
      retryMs: 15_000,
      onProblem: (p) => problems.push(p),
      choose: async () => choices.shift() ?? { kind: 'start' },
      startOwn: async () => ({ api: own.api, close: async () => undefined }),
      attach: () => {
        throw new Error('no attach here');
      },
      setupApi: (onReady) => {
        ready = onReady;
        return setup.api;
      },
    });
    cleanup.push(() => sup.close());
    await sup.refresh();
    expect(switchable.current).toBe(setup.api);
    expect(problems).toEqual([NOT_SET_UP]);
    ready();
    await sup.refresh();
    expect(switchable.current).toBe(own.api);
    expect(problems).toEqual([NOT_SET_UP, null]);
  });

  it('without a setup api, says the computer is not set up', async () => {
    const { sup, problems } = supervisor([{ kind: 'setup' }], async () => {
      throw new Error('not called');
    });
    await sup.refresh();
    expect(problems).toEqual([NOT_SET_UP]);
  });
});
