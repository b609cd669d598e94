import { afterEach, describe, expect, it } from 'vitest';
import { createHttpApi } from '../../src/api/httpClient.js';
import { readServeInfo } from '../../src/api/serveInfo.js';
import { SyncNode } from '../../src/engine/node/node.js';
import { resolveDbTarget } from '../../src/engine/config/home.js';
import { chooseEngine, realProbe } from '../../src/main/engineChoice.js';
import { startOwnEngine, type OwnEngine } from '../../src/main/ownEngine.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { initRoot } from '../helpers/node.js';

/*
 * The desktop app running the node itself (no service): the same parts as `serve`, announced in
 * serve.json so any other front end attaches to it, and the node's lock held so no second engine
 * starts beside it.
 */

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => undefined);
});

async function rootNode(): Promise<{ db: TestDb; node: SyncNode }> {
  const db = await createTestDb();
  cleanup.push(() => db.drop());
  const node = await initRoot(db, 'district');
  // init holds the lock; the app opens the node afresh, as it would after a restart.
  await node.close();
  return { db, node };
}

const answersOverHttp = (baseUrl: string, token: string) =>
  createHttpApi({ baseUrl, token })
    .getStatus()
    .then(
      () => true,
      () => false,
    );

describe("the app's own engine", () => {
  it('runs the node, announces itself for others to attach, and is the only engine', async () => {
    const { node } = await rootNode();
    const home = node.home;
    const settings = home.requireSettings();
    const start = () =>
      startOwnEngine({
        home,
        settings,
        listen: { host: '127.0.0.1', port: 0 },
        log: () => undefined,
      });
    const own: OwnEngine = await start();
    cleanup.push(() => own.close());

    expect(await own.api.getStatus()).toMatchObject({
      name: 'district',
      role: 'root',
      state: 'up-to-date',
    });
    const info = readServeInfo(home);
    expect(info).toMatchObject({ pid: process.pid });
    expect(info?.listen).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(info?.admin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    // Another app or a clinic-sync command (another process) attaches to it.
    const other = { ...realProbe(answersOverHttp), pid: process.pid + 100_000 };
    const choice = await chooseEngine(home, true, other);
    expect(choice).toMatchObject({ kind: 'attach', baseUrl: info?.admin, pid: process.pid });
    // This app itself does not attach to its own engine.
    expect(await chooseEngine(home, true, realProbe(answersOverHttp))).toEqual({ kind: 'start' });

    // A second engine on the node is refused at once.
    await expect(start()).rejects.toMatchObject({ kind: 'locked' });

    await own.close();
    expect(readServeInfo(home)).toBeNull();
    // The lock is free again.
    const { target } = resolveDbTarget(undefined, {}, home);
    const again = await SyncNode.open({ db: target, settings, home, lock: 'try' });
    await again.close();
  });
});
