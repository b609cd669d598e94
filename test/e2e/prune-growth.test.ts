import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import { isSyncError } from '../../src/engine/errors.js';
import { LOG_FILE, RotatingLog } from '../../src/engine/node/logfile.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { pruneJournal, recloneSentence } from '../../src/engine/node/prune.js';
import { NodeService } from '../../src/engine/node/service.js';
import { ParentClient } from '../../src/engine/transport/client.js';
import { startSyncServer, type SyncServer } from '../../src/engine/transport/server.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { cloneDatabase, pairChild } from '../helpers/http.js';
import { Tree } from '../helpers/tree.js';

/*
 * Issue 8, item 7 (DESIGN §9): growth is bounded. The journal is pruned once every neighbour
 * holds a change, so it stays small over many exchanges while the nodes still converge; a child
 * silent past the limit is marked for a re-clone and its backlog released; below the free-disk
 * threshold applying stops with a sentence while capture goes on, and resumes when space is
 * back; log files rotate under a size cap.
 */

interface Child {
  node: SyncNode;
  client: ParentClient;
  service: NodeService;
}

async function logRows(node: SyncNode): Promise<number> {
  const [r] = await queryRows(node.pool, 'SELECT COUNT(*) AS n FROM clinicsync_log');
  return Number(r!.n);
}

async function people(node: SyncNode): Promise<string[]> {
  const rows = await queryRows(node.pool, 'SELECT uuid, gender FROM person ORDER BY uuid');
  return rows.map((r) => `${String(r.uuid)}:${String(r.gender)}`);
}

async function addPerson(node: SyncNode, uuid: string, gender = 'F'): Promise<void> {
  await execute(
    node.pool,
    "INSERT INTO person (gender, creator, date_created, uuid) VALUES (?, 1, '2026-07-01', ?)",
    [gender, uuid],
  );
}

const prune = (node: SyncNode, over: { journalKeepHours?: number; now?: number } = {}) =>
  pruneJournal(node.pool, {
    childSilentDays: node.settings.storage.childSilentDays,
    journalKeepHours: 0,
    ...over,
  });

describe('bounded growth', () => {
  let tree: Tree;
  let root: SyncNode;
  let server: SyncServer;
  const kids: Child[] = [];

  beforeAll(async () => {
    tree = new Tree();
    const db = await createTestDb('cs_prune');
    await createClinicSchema(db.pool);
    root = await tree.root(db, 'district');
    server = await startSyncServer({ node: root, host: '127.0.0.1', port: 0 });
    for (const name of ['north', 'south']) {
      const { node } = await cloneDatabase(tree, root, name, server.url);
      await (await pairChild(node, root, server.url)).close();
      const client = await ParentClient.forNode(node);
      kids.push({ node, client, service: new NodeService(node, client) });
    }
  }, 120_000);

  afterAll(async () => {
    for (const k of kids) await k.client.close();
    await server?.close();
    await tree?.close();
  });

  it('keeps the journal bounded over many exchanges, and the nodes still converge', async () => {
    const nodes = [root, ...kids.map((k) => k.node)];
    let made = 0;
    const peak = new Map<SyncNode, number>();
    // With the default margin (changes of the last 24 hours are kept) nothing goes yet.
    await addPerson(root, 'p-r-first');
    for (const k of kids) await k.service.syncNow();
    for (const k of kids) await k.service.syncNow();
    expect((await prune(root, { journalKeepHours: 24 })).logRows).toBe(0);

    for (let round = 0; round < 12; round++) {
      for (const [i, n] of nodes.entries()) {
        for (let j = 0; j < 4; j++) await addPerson(n, `p-${i}-${round}-${j}`);
        await execute(n.pool, 'UPDATE person SET gender = ? WHERE uuid = ?', [
          `G${round}`,
          `p-${i}-${round}-0`,
        ]);
        made += 5;
      }
      // Twice round the tree: what one child made reaches the other, and every ack comes back.
      for (let pass = 0; pass < 2; pass++) for (const k of kids) await k.service.syncNow();
      for (const n of nodes) {
        await prune(n);
        peak.set(n, Math.max(peak.get(n) ?? 0, await logRows(n)));
      }
    }
    expect(made).toBe(180);
    // Everything every neighbour holds is gone; one row stays, so the log's positions go on.
    for (const n of nodes) {
      expect(await logRows(n)).toBe(1);
      expect(peak.get(n)!).toBeLessThanOrEqual(1);
    }
    const want = await people(root);
    expect(want.length).toBeGreaterThanOrEqual(49);
    for (const k of kids) expect(await people(k.node)).toEqual(want);
    // New changes still flow after all that pruning.
    await addPerson(kids[0]!.node, 'p-after-prune');
    for (let pass = 0; pass < 2; pass++) for (const k of kids) await k.service.syncNow();
    expect(await people(kids[1]!.node)).toContain('p-after-prune:F');
    expect((await root.status()).journalBytes).toBeGreaterThan(0);
  }, 240_000);

  it('marks a child silent past the limit for a re-clone and releases its backlog', async () => {
    const [north, south] = kids as [Child, Child];
    for (let j = 0; j < 10; j++) await addPerson(root, `p-backlog-${j}`);
    await north.service.syncNow();
    await north.service.syncNow();
    // South has not taken these: they stay for it.
    await prune(root);
    expect(await logRows(root)).toBeGreaterThanOrEqual(10);

    // South was last heard from 100 days ago.
    await execute(
      root.pool,
      'UPDATE clinicsync_peer SET last_contact_at = UTC_TIMESTAMP(3) - INTERVAL 100 DAY WHERE node_id = ?',
      [south.node.nodeId],
    );
    const r = await prune(root);
    expect(r.silentChildren).toEqual(['south']);
    expect(await logRows(root)).toBe(1);
    // Marked once.
    expect((await prune(root)).silentChildren).toEqual([]);

    const refused = await south.service.syncNow().catch((e: unknown) => e);
    expect(isSyncError(refused) && refused.kind).toBe('protocol');
    expect((refused as Error).message).toBe(recloneSentence(90));
    // North carries on.
    await addPerson(root, 'p-north-still');
    await north.service.syncNow();
    expect(await people(north.node)).toContain('p-north-still:F');
  }, 120_000);

  it('stops applying below the free-disk threshold, keeps capturing, and resumes', async () => {
    const north = kids[0]!;
    // The child's disk "fills up": a threshold above any disk.
    north.node.settings.storage.minFreeMegabytes = 10_000_000;
    await addPerson(root, 'p-disk-parent');
    const before = await people(north.node);
    const stopped = await north.service.syncNow().catch((e: unknown) => e);
    expect(isSyncError(stopped) && stopped.kind).toBe('state');
    expect((stopped as Error).message).toMatch(
      /^The disk holding \S+ has [\d,]+ MB free, less than the 10,000,000 MB set in storage\.minFreeMegabytes; ClinicSync applies no received changes until space is freed \(changes made here are still recorded\)\.$/,
    );
    expect(await people(north.node)).toEqual(before);
    // Capture goes on: a change made here meanwhile is recorded and waits to go.
    await addPerson(north.node, 'p-disk-child');
    expect((await north.node.status()).pendingOut).toBeGreaterThanOrEqual(1);
    expect((await north.node.status()).lastError).toMatch(/applies no received changes/);

    // The parent's disk fills up: it applies nothing and tells the child why.
    north.node.settings.storage.minFreeMegabytes = 0;
    root.settings.storage.minFreeMegabytes = 10_000_000;
    const parentFull = await north.service.syncNow().catch((e: unknown) => e);
    expect(isSyncError(parentFull) && parentFull.kind).toBe('unreachable');
    expect((parentFull as Error).message).toBe(
      "The main server's disk is almost full, so it applies nothing until space is freed there; ClinicSync will try again.",
    );
    expect(await people(root)).not.toContain('p-disk-child:F');

    // Space is back on both: everything flows again.
    root.settings.storage.minFreeMegabytes = 0;
    await north.service.syncNow();
    expect(await people(north.node)).toContain('p-disk-parent:F');
    expect(await people(root)).toContain('p-disk-child:F');
  }, 120_000);

  it('rotates its log file under a size cap', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-logs-'));
    try {
      const log = new RotatingLog(dir, () => ({ logMaxBytes: 4_096, logFiles: 3 }));
      for (let i = 0; i < 500; i++)
        log.write({ level: 'info', message: `exchange ${i} answered`, status: 200, ms: i });
      const files = fs.readdirSync(dir).sort();
      expect(files).toEqual([LOG_FILE, `${LOG_FILE}.1`, `${LOG_FILE}.2`]);
      for (const f of files) expect(fs.statSync(path.join(dir, f)).size).toBeLessThanOrEqual(4_096);
      expect(fs.statSync(path.join(dir, LOG_FILE)).mode & 0o777).toBe(0o600);
      const last = fs.readFileSync(path.join(dir, LOG_FILE), 'utf8').trim().split('\n').at(-1)!;
      expect(JSON.parse(last)).toMatchObject({
        level: 'info',
        message: 'exchange 499 answered',
        status: 200,
        ms: 499,
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
