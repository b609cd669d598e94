import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Home } from '../../src/engine/config/home.js';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import { SyncNode } from '../../src/engine/node/node.js';
import { ParentClient, writeParentSecret } from '../../src/engine/transport/client.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { cloneDatabase } from '../helpers/http.js';
import { Tree } from '../helpers/tree.js';
import { runCli, startServe, type Served } from '../helpers/cli.js';

async function waitFor(check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('clinic-sync serve, pair and sync', () => {
  let dir: string;
  let rootHome: string;
  let rootDb: TestDb;
  let tree: Tree;
  let parent: Served | null = null;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-http-cli-'));
    rootHome = path.join(dir, 'root');
    rootDb = await createTestDb('cs_cli_http');
    await createClinicSchema(rootDb.pool);
    const url = rootDb.url.replace(/:[^:@/]*@/, '@');
    const init = await runCli(['--home', rootHome, 'init', '--db', url, '--name', 'district']);
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    tree = new Tree();
  });
  afterAll(async () => {
    parent?.proc.kill('SIGKILL');
    await tree.close();
    await rootDb.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves on a free port, writes serve.json, pairs a child that then syncs, stops on SIGTERM', async () => {
    parent = await startServe(rootHome);
    const { url } = parent;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(url).not.toMatch(/:0$/);

    const infoFile = path.join(rootHome, 'serve.json');
    const info = JSON.parse(fs.readFileSync(infoFile, 'utf8')) as Record<string, unknown>;
    expect(info).toMatchObject({ pid: parent.proc.pid, listen: url });
    expect(String(info.admin)).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // admin-url prints the admin address with its token, alone on the last line
    const adminUrl = await runCli(['--home', rootHome, 'admin-url']);
    expect(adminUrl.code).toBe(0);
    const page = adminUrl.stdout.trim().split('\n').at(-1)!;
    expect(page.startsWith(`${String(info.admin)}/?token=`)).toBe(true);
    const token = new URL(page).searchParams.get('token')!;
    const status = await fetch(`${String(info.admin)}/api/status`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(status.status).toBe(200);
    expect(((await status.json()) as { name: string }).name).toBe('district');
    expect((await fetch(`${String(info.admin)}/api/status`)).status).toBe(401);
    expect(Date.parse(String(info.startedAt))).not.toBeNaN();

    const hello = await (await fetch(`${url}/v1/hello`)).json();
    expect(hello).toMatchObject({ service: 'clinicsync', name: 'district' });

    // `pair` works while serve holds the node: it takes no lock.
    const pair = await runCli(['--home', rootHome, 'pair', '--ttl', '30']);
    expect(pair.stderr).toBe('');
    expect(pair.code).toBe(0);
    const lines = pair.stdout.trim().split('\n');
    expect(lines[0]).toBe(
      'Give this code to the clinic that joins; it works once, for 30 minutes.',
    );
    const code = lines.at(-1)!;
    expect(code).toMatch(/^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/);

    // A child made from a copy of the parent's database, joined with the printed code.
    const rootNode = await SyncNode.open({
      db: rootDb.target,
      settings: new Home(rootHome).requireSettings(),
      home: new Home(rootHome),
      lock: 'none',
    });
    tree.nodes.push(rootNode);
    const { node: child, home: childHome } = await cloneDatabase(tree, rootNode, 'centre', url);
    const client = new ParentClient({ url });
    const paired = await client.pair(code, {
      name: 'centre',
      nodeId: child.nodeId,
      incarnation: child.incarnation,
    });
    await client.close();
    writeParentSecret(childHome, paired.secret);
    expect(fs.statSync(path.join(childHome.secretsDir, 'parent-secret')).mode & 0o777).toBe(0o600);
    await execute(
      child.pool,
      "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-02-01', 'p-cli')",
    );
    await child.close(); // the command takes the child's lock itself

    const sync = await runCli(['--home', childHome.dir, 'sync']);
    expect(sync.stderr).toBe('');
    expect(sync.code).toBe(0);
    const summary = sync.stdout.trim().split('\n');
    expect(summary).toHaveLength(1);
    expect(summary[0]).toMatch(
      /^Sent [1-9]\d* changes?, received \d+ \(\d+ rounds?, [\d.]+ (bytes|KB|MB) up, [\d.]+ (bytes|KB|MB) down\); up to date\.$/,
    );
    const [row] = await queryRows(
      rootDb.pool,
      "SELECT COUNT(*) AS n FROM person WHERE uuid = 'p-cli'",
    );
    expect(Number(row!.n)).toBe(1);

    // The child's own serve runs its schedule: a change there reaches the parent by itself.
    const childServe = await startServe(childHome.dir, [
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--interval',
      '1',
    ]);
    const childDb = tree.dbs.find((d) => d.name === child.db.database)!;
    await execute(
      childDb.pool,
      "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('M', 1, '2026-02-02', 'p-scheduled')",
    );
    await waitFor(async () => {
      const [r] = await queryRows(
        rootDb.pool,
        "SELECT COUNT(*) AS n FROM person WHERE uuid = 'p-scheduled'",
      );
      return Number(r!.n) === 1;
    });
    childServe.proc.kill('SIGTERM');
    expect(await childServe.exited).toBe(0);
    expect(fs.existsSync(path.join(childHome.dir, 'serve.json'))).toBe(false);

    // A root has nobody to sync with: one sentence, exit 1.
    const onRoot = await runCli(['--home', rootHome, 'sync']);
    expect(onRoot.code).toBe(1);
    expect(onRoot.stdout).toBe('');
    expect(onRoot.stderr.trim()).toBe(
      'This node has no parent to sync with; it is the root of its tree.',
    );

    // A parent that cannot be reached: exit 3.
    const settings = childHome.requireSettings();
    childHome.save({ ...settings, parent: 'http://127.0.0.1:9' });
    const away = await runCli(['--home', childHome.dir, 'sync']);
    expect(away.code).toBe(3);
    expect(away.stderr.trim()).toBe(
      'The main server at http://127.0.0.1:9 did not answer; check the connection. ClinicSync will try again.',
    );

    parent.proc.kill('SIGTERM');
    expect(await parent.exited).toBe(0);
    expect(fs.existsSync(infoFile)).toBe(false);
    parent = null;

    // The lock went with it: an engine can take the node at once.
    const again = await SyncNode.open({
      db: rootDb.target,
      settings: new Home(rootHome).requireSettings(),
      home: new Home(rootHome),
      lock: 'try',
    });
    await again.close();
  });

  it('refuses a malformed --listen and --ttl with one sentence, exit 2', async () => {
    const listen = await runCli(['--home', rootHome, 'serve', '--listen', 'nowhere']);
    expect(listen.code).toBe(2);
    expect(listen.stderr.trim()).toBe(
      '--listen must be HOST:PORT, like 0.0.0.0:8750 (port 0 picks a free one), not "nowhere".',
    );
    const ttl = await runCli(['--home', rootHome, 'pair', '--ttl', 'soon']);
    expect(ttl.code).toBe(2);
    expect(ttl.stderr.trim().split('\n')).toHaveLength(1);
  });
});
