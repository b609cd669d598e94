import type { ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Home } from '../../src/engine/config/home.js';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import { NodeService } from '../../src/engine/node/service.js';
import { ParentClient } from '../../src/engine/transport/client.js';
import { startSyncServer } from '../../src/engine/transport/server.js';
import {
  CERT_FILE,
  KEY_SECRET,
  PARENT_FINGERPRINT_SECRET,
  ensureCertificate,
  fingerprintOf,
  parseFingerprint,
  readParentFingerprint,
} from '../../src/engine/transport/tls.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { cloneDatabase, pairChild } from '../helpers/http.js';
import { tempHome } from '../helpers/node.js';
import { Tree } from '../helpers/tree.js';
import { freePort, runCli, startServe } from '../helpers/cli.js';

/*
 * Issue 8, item 4, end to end with the real command: `init` makes a self-signed certificate,
 * `serve --https` presents it, `pair` prints its fingerprint above the code, `clone` trusts it
 * (given with --fingerprint, or shown when met first), `sync` goes over it, and once the parent's
 * certificate is replaced the child refuses it with a sentence and sends nothing.
 */

const serveHttps = (home: string, port: number) =>
  startServe(home, ['--https', '--listen', `127.0.0.1:${port}`, '--admin', '127.0.0.1:0']);

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.on('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

describe('HTTPS with a pinned self-signed certificate', () => {
  let dir: string;
  let rootDb: TestDb;
  const childDbs: TestDb[] = [];
  let parent: ChildProcess | null = null;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-https-'));
    rootDb = await createTestDb('cs_https');
    await createClinicSchema(rootDb.pool);
  });
  afterAll(async () => {
    if (parent) await stop(parent);
    for (const d of childDbs) await d.drop();
    await rootDb.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('init makes the certificate, pair prints its fingerprint, clone pins it, a changed one is refused', async () => {
    const rootHome = path.join(dir, 'root');
    const dbUrl = (d: TestDb) => d.url.replace(/:[^:@/]*@/, '@');
    const init = await runCli([
      '--home',
      rootHome,
      'init',
      '--db',
      dbUrl(rootDb),
      '--name',
      'district',
    ]);
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    const certFile = path.join(rootHome, CERT_FILE);
    const keyFile = path.join(rootHome, 'secrets', KEY_SECRET);
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    const fingerprint = fingerprintOf(new X509Certificate(fs.readFileSync(certFile)).raw);

    const port = await freePort();
    const served = await serveHttps(rootHome, port);
    parent = served.proc;
    expect(served.url).toBe(`https://127.0.0.1:${port}`);

    const pair = await runCli(['--home', rootHome, 'pair']);
    expect(pair.code).toBe(0);
    const lines = pair.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[1]).toBe(`fingerprint ${fingerprint}`);
    const code = lines[2]!;

    // A wrong fingerprint given by a script: refused before anything is sent, code not spent.
    const childDb = await createTestDb('cs_https_child');
    childDbs.push(childDb);
    const childHome = path.join(dir, 'centre');
    const other = fingerprintOf(Buffer.from('another certificate'));
    const clone = (extra: string[], home = childHome, db = childDb) =>
      runCli([
        '--home',
        home,
        'clone',
        '--parent',
        served.url,
        '--code',
        code,
        '--db',
        dbUrl(db),
        '--name',
        path.basename(home),
        ...extra,
      ]);
    const wrong = await clone(['--fingerprint', other]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.trim().split('\n').at(-1)).toBe(
      `The main server at ${served.url} presented the certificate ${fingerprint}, not ${other} as given with --fingerprint, so nothing was sent; check the address, and the fingerprint "clinic-sync pair" prints there.`,
    );
    expect(
      (
        await runCli([
          '--home',
          childHome,
          'clone',
          '--parent',
          served.url,
          '--code',
          code,
          '--db',
          dbUrl(childDb),
          '--name',
          'centre',
          '--fingerprint',
          'nonsense',
        ])
      ).code,
    ).toBe(2);

    // The right one, in the hex form openssl prints: the clone goes through and keeps it.
    const hex = Buffer.from(fingerprint.slice(7), 'base64').toString('hex').toUpperCase();
    const colons = `SHA256:${hex.match(/../g)!.join(':')}`;
    expect(parseFingerprint(colons)).toBe(fingerprint);
    const ok = await clone(['--fingerprint', colons]);
    expect(ok.stderr).not.toMatch(/failed/);
    expect(ok.code).toBe(0);
    expect(readParentFingerprint(new Home(childHome))).toBe(fingerprint);
    expect(
      fs.statSync(path.join(childHome, 'secrets', PARENT_FINGERPRINT_SECRET)).mode & 0o777,
    ).toBe(0o600);

    // Without --fingerprint, clone shows the one it met for the person to compare.
    const pair2 = await runCli(['--home', rootHome, 'pair']);
    const code2 = pair2.stdout.trim().split('\n').at(-1)!;
    const db2 = await createTestDb('cs_https_child');
    childDbs.push(db2);
    const shown = await runCli([
      '--home',
      path.join(dir, 'south'),
      'clone',
      '--parent',
      served.url,
      '--code',
      code2,
      '--db',
      dbUrl(db2),
      '--name',
      'south',
    ]);
    expect(shown.code).toBe(0);
    expect(shown.stderr).toContain(
      `The main server's certificate fingerprint is ${fingerprint}; check that it is the one "clinic-sync pair" printed there.`,
    );

    // A sync over HTTPS.
    await execute(
      childDb.pool,
      "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-04-01', 'p-tls-1')",
    );
    const sync = await runCli(['--home', childHome, 'sync']);
    expect(sync.stderr).toBe('');
    expect(sync.code).toBe(0);
    const count = async (uuid: string) =>
      Number(
        (
          await queryRows(rootDb.pool, 'SELECT COUNT(*) AS n FROM person WHERE uuid = ?', [uuid])
        )[0]!.n,
      );
    expect(await count('p-tls-1')).toBe(1);

    // The parent's certificate is replaced (or someone sits in between): the child refuses it.
    await stop(served.proc);
    fs.rmSync(certFile);
    fs.rmSync(keyFile);
    const again = await serveHttps(rootHome, port);
    parent = again.proc;
    const changed = fingerprintOf(new X509Certificate(fs.readFileSync(certFile)).raw);
    expect(changed).not.toBe(fingerprint);
    await execute(
      childDb.pool,
      "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-04-02', 'p-tls-2')",
    );
    const refused = await runCli(['--home', childHome, 'sync']);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toBe(
      `The main server at ${served.url} presented a different certificate (${changed}) from the one this clinic trusts (${fingerprint}), so nothing was sent: someone may be in between. If its certificate was really replaced, check the new fingerprint with "clinic-sync pair" there, then trust it here by removing the file secrets/parent-fingerprint from this clinic's ClinicSync folder.`,
    );
    expect(await count('p-tls-2')).toBe(0);

    // Trusting the new certificate, as the sentence says: the sync goes through.
    fs.rmSync(path.join(childHome, 'secrets', PARENT_FINGERPRINT_SECRET));
    const trusted = await runCli(['--home', childHome, 'sync']);
    expect(trusted.code).toBe(0);
    expect(await count('p-tls-2')).toBe(1);
    expect(readParentFingerprint(new Home(childHome))).toBe(changed);
  }, 240_000);

  it('keeps one connection for the rounds of a sync, and resumes the TLS session on the next', async () => {
    const tree = new Tree();
    const db = await createTestDb('cs_https_keep');
    await createClinicSchema(db.pool);
    const root = await tree.root(db, 'district');
    const cert = await ensureCertificate(tempHome(), 'district');
    const server = await startSyncServer({
      node: root,
      host: '127.0.0.1',
      port: 0,
      tls: { cert: cert.cert, key: cert.key },
    });
    let client: ParentClient | null = null;
    try {
      expect(server.url).toMatch(/^https:/);
      const { node } = await cloneDatabase(tree, root, 'centre', server.url);
      await (await pairChild(node, root, server.url)).close();
      for (let i = 0; i < 4; i++) {
        await execute(
          node.pool,
          "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('M', 1, '2026-04-03', ?)",
          [`p-keep-${i}`],
        );
      }
      node.settings.sync.batchRecords = 1;
      client = await ParentClient.forNode(node);
      const service = new NodeService(node, client);
      const first = await service.syncNow();
      expect(first.rounds).toBeGreaterThanOrEqual(4);
      // Every round of the sync went over the one kept-alive connection.
      expect(client.tlsConnections).toEqual({ connections: 1, resumed: 0 });
      // The pin was taken at first contact and kept in the home.
      expect(readParentFingerprint(node.home)).toBe(cert.fingerprint);
      await execute(
        node.pool,
        "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('M', 1, '2026-04-03', 'p-keep-next')",
      );
      // The next sync connects afresh (the name is looked up again) but resumes the session.
      await service.syncNow();
      expect(client.tlsConnections).toEqual({ connections: 2, resumed: 1 });
    } finally {
      await client?.close();
      await server.close();
      await tree.close();
    }
  }, 120_000);
});
