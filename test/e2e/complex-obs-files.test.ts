import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSyncError } from '../../src/engine/errors.js';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import { receiveFiles } from '../../src/engine/files/incoming.js';
import { filePlaces } from '../../src/engine/files/local.js';
import { buildFiles } from '../../src/engine/files/outgoing.js';
import { FILES_SUFFIX } from '../../src/engine/files/usb.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { NodeService } from '../../src/engine/node/service.js';
import { loadTransferFile } from '../../src/engine/transfer/loadFile.js';
import { writeTransferFile } from '../../src/engine/transfer/writeFile.js';
import { ParentClient, readParentSecret } from '../../src/engine/transport/client.js';
import { startSyncServer, type SyncServer } from '../../src/engine/transport/server.js';
import { createTestDb } from '../helpers/db.js';
import { BIN, cliEnv } from '../helpers/cli.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { cloneDatabase, pairChild, rawPost, signedHeaders } from '../helpers/http.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { Tree } from '../helpers/tree.js';
import { usbKey } from '../helpers/usb.js';

/*
 * Complex obs files (issue 12 item 6) between real nodes: real MariaDB, real files, real HTTP
 * through a proxy that cuts the link, and sealed files on a folder standing for a USB key.
 */

const FIVE_MB = 5 * 1024 * 1024;

function appData(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'cs-openmrs-'));
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** A complex obs on `node`: its row, and its file in the node's complex_obs folder. */
async function complexObs(node: SyncNode, name: string, bytes: number): Promise<string> {
  const dir = path.join(node.settings.complexObs.dataDir!, 'complex_obs');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), randomBytes(bytes));
  const uuid = randomUUID();
  await execute(node.pool, 'INSERT INTO obs (value_complex, uuid) VALUES (?, ?)', [
    `Chest X-ray|${name}`,
    uuid,
  ]);
  return uuid;
}

async function fileIn(node: SyncNode, name: string) {
  const [r] = await queryRows(
    node.pool,
    'SELECT have, size, state FROM clinicsync_file_in WHERE name = ?',
    [name],
  );
  return r ? { have: Number(r.have), size: Number(r.size), state: String(r.state) } : null;
}

describe('complex obs files', () => {
  let tree: Tree;
  let root: SyncNode;
  let child: SyncNode;
  let server: SyncServer;
  let proxy: Proxy;
  let client: ParentClient;

  beforeAll(async () => {
    tree = new Tree();
    const db = await createTestDb('cs_files');
    await createClinicSchema(db.pool);
    root = await tree.root(db, 'district');
    root.settings.complexObs.dataDir = appData();
    server = await startSyncServer({ node: root, host: '127.0.0.1', port: 0 });
    ({ node: child } = await cloneDatabase(tree, root, 'clinic', server.url));
    (await pairChild(child, root, server.url)).close();
    child.settings.complexObs.dataDir = appData();
    proxy = await startProxy({ target: { host: server.host, port: server.port } });
    client = new ParentClient({
      url: proxy.url(),
      timeoutSeconds: 10,
      nodeId: child.nodeId,
      secret: readParentSecret(child.home),
      parentNodeId: root.nodeId,
    });
  }, 120_000);

  afterAll(async () => {
    await client.close();
    await proxy.close();
    await server.close();
    await tree.close();
  });

  it('moves a 5 MB file by network after its row, and resumes after a cut from where it was', async () => {
    const name = 'xray_net_1.bin';
    await complexObs(child, name, FIVE_MB);
    const source = path.join(child.settings.complexObs.dataDir!, 'complex_obs', name);
    const target = path.join(root.settings.complexObs.dataDir!, 'complex_obs', name);

    // The link dies once 2 MB have gone up: the rows and part of the file made it.
    proxy.setPlan((i) => (i === 0 ? { cutRequestAt: 2 * 1024 * 1024 } : {}));
    const first = new NodeService(child, client);
    const failed = await first.syncNow().catch((e: unknown) => e);
    expect(isSyncError(failed) && failed.kind).toBe('unreachable');
    const cut = await fileIn(root, name);
    expect(cut?.state).toBe('partial');
    expect(cut!.have).toBeGreaterThan(512 * 1024);
    expect(cut!.have).toBeLessThan(FIVE_MB);
    expect(fs.existsSync(target)).toBe(false);
    // Status says so on both sides: the rest to come here, the file still being sent there.
    expect((await root.status()).complexObsFiles).toEqual({
      arriving: 1,
      bytesToCome: FIVE_MB - cut!.have,
      waitingForRecord: 0,
      sending: 0,
      problem: null,
    });
    expect((await child.status()).complexObsFiles?.sending).toBe(1);
    // The obs row went first.
    expect(
      await queryRows(root.pool, 'SELECT 1 FROM obs WHERE value_complex LIKE ?', [`%|${name}`]),
    ).toHaveLength(1);

    // A new engine (as after the process was killed) picks the file up from the last piece.
    proxy.setPlan(() => ({}));
    const upBefore = proxy.stats.bytes.request;
    const summary = await new NodeService(child, client).syncNow();
    const upAfter = proxy.stats.bytes.request - upBefore;
    expect(summary.rounds).toBeGreaterThan(1);
    expect(upAfter).toBeLessThan(FIVE_MB - cut!.have + 512 * 1024);
    expect(fs.existsSync(target)).toBe(true);
    expect(sha256(target)).toBe(sha256(source));
    expect((await fileIn(root, name))?.state).toBe('placed');
    // Nothing left half-written in staging.
    expect(
      fs.readdirSync(path.join(root.settings.complexObs.dataDir!, 'clinicsync-staging')),
    ).toEqual([]);

    // Settled: another sync moves no file bytes.
    const again = proxy.stats.bytes.request;
    await new NodeService(child, client).syncNow();
    expect(proxy.stats.bytes.request - again).toBeLessThan(16 * 1024);
    const settled = { arriving: 0, bytesToCome: 0, waitingForRecord: 0, sending: 0, problem: null };
    expect((await root.status()).complexObsFiles).toEqual(settled);
    expect((await child.status()).complexObsFiles).toEqual(settled);
  }, 180_000);

  it('moves a 5 MB file by USB key in two files, the second carrying only the remainder', async () => {
    const name = 'xray_usb_1.bin';
    await complexObs(child, name, FIVE_MB);
    const source = path.join(child.settings.complexObs.dataDir!, 'complex_obs', name);
    const target = path.join(root.settings.complexObs.dataDir!, 'complex_obs', name);
    const parentPeer = (await child.peers()).find((p) => p.relation === 'parent')!;

    // The first key has room for about half the file.
    const key1 = usbKey();
    const w1 = await writeTransferFile(child, parentPeer, key1, { maxBytes: 3 * 1024 * 1024 });
    expect(w1.complete).toBe(true);
    const side1 = `${w1.file}${FILES_SUFFIX}`;
    expect(fs.statSync(side1).size).toBeLessThanOrEqual(3 * 1024 * 1024);
    // The files file is sealed: the file's bytes cannot be read from it.
    const plain = fs.readFileSync(source);
    expect(fs.readFileSync(side1).includes(plain.subarray(0, 64))).toBe(false);
    await loadTransferFile(root, w1.file, { replyDir: usbKey() });
    const half = await fileIn(root, name);
    expect(half?.state).toBe('partial');
    expect(half!.have).toBeGreaterThan(FIVE_MB / 3);
    expect(fs.existsSync(target)).toBe(false);

    const key2 = usbKey();
    const w2 = await writeTransferFile(child, parentPeer, key2, { maxBytes: 16 * 1024 * 1024 });
    const side2 = `${w2.file}${FILES_SUFFIX}`;
    // Only the rest travels, not the whole file again.
    expect(fs.statSync(side2).size).toBeLessThan(FIVE_MB - half!.have + 256 * 1024);
    await loadTransferFile(root, w2.file, { replyDir: usbKey() });
    expect((await fileIn(root, name))?.state).toBe('placed');
    expect(sha256(target)).toBe(sha256(source));
  }, 180_000);

  it('refuses a files file larger than any ClinicSync writes, unread, after loading the rows', async () => {
    const name = 'xray_usb_big.bin';
    const uuid = await complexObs(child, name, 64 * 1024);
    const parentPeer = (await child.peers()).find((p) => p.relation === 'parent')!;
    const w = await writeTransferFile(child, parentPeer, usbKey());
    const side = `${w.file}${FILES_SUFFIX}`;
    expect(fs.existsSync(side)).toBe(true);
    // A sparse file: 600 MB as the disk reports it, nothing on it.
    fs.truncateSync(side, 600 * 1024 * 1024);
    await expect(loadTransferFile(root, w.file, { replyDir: usbKey() })).rejects.toThrow(
      /were loaded, but not the complex obs files beside them: The file \S+ is larger than 512 MB/,
    );
    expect(await fileIn(root, name)).toBeNull();
    const [row] = await queryRows(root.pool, 'SELECT value_complex AS v FROM obs WHERE uuid = ?', [
      uuid,
    ]);
    expect(String(row?.v)).toBe(`Chest X-ray|${name}`);
    // New keys, as the sentence says, bring the file: the clinic took the first as delivered, and
    // learns from the reply to the next what the hospital still lacks.
    for (let trip = 0; trip < 2; trip++) {
      const w2 = await writeTransferFile(child, parentPeer, usbKey());
      const loaded = await loadTransferFile(root, w2.file, { replyDir: usbKey() });
      await loadTransferFile(child, loaded.replyFile!);
    }
    expect((await fileIn(root, name))?.state).toBe('placed');
  }, 120_000);

  it('crosses a 1 kbit/s link in pieces of the chunk setting, each round small', async () => {
    const name = 'ecg_slow_1.bin';
    await complexObs(child, name, 2 * 1024);
    const slow = await startProxy({
      target: { host: server.host, port: server.port },
      bytesPerSecond: 125,
    });
    const link = new ParentClient({
      url: slow.url(),
      timeoutSeconds: 60,
      nodeId: child.nodeId,
      secret: readParentSecret(child.home),
      parentNodeId: root.nodeId,
    });
    const sizes: number[] = [];
    const send = link.exchangeFiles.bind(link);
    link.exchangeFiles = (body, opts) => {
      sizes.push(body.length);
      return send(body, opts);
    };
    child.settings.complexObs.chunkBytes = 1024;
    child.settings.sync.batchBytes = 1024;
    try {
      await new NodeService(child, link).syncNow();
    } finally {
      child.settings.complexObs.chunkBytes = 4096;
      child.settings.sync.batchBytes = 262_144;
      await link.close();
      await slow.close();
    }
    const target = path.join(root.settings.complexObs.dataDir!, 'complex_obs', name);
    expect(sha256(target)).toBe(
      sha256(path.join(child.settings.complexObs.dataDir!, 'complex_obs', name)),
    );
    // Two pieces, one per round; no request much over a piece, so none outlasts its timeout.
    expect(sizes.filter((n) => n > 1024)).toHaveLength(2);
    expect(Math.max(...sizes)).toBeLessThan(1024 + 512);
  }, 180_000);

  it('resumes a file from its last piece after the syncing process is killed', async () => {
    const throttled = await startProxy({
      target: { host: server.host, port: server.port },
      bytesPerSecond: 512 * 1024,
    });
    const { node: ward, home } = await cloneDatabase(tree, root, 'ward', throttled.url());
    (await pairChild(ward, root, throttled.url())).close();
    ward.settings.complexObs.dataDir = appData();
    home.save(ward.settings);
    const name = 'mri_kill_1.bin';
    await complexObs(ward, name, FIVE_MB);
    // The CLI process below is the engine now.
    await ward.close();
    const run = () => {
      const proc = spawn(process.execPath, [BIN, '--home', home.dir, 'sync'], {
        env: cliEnv(),
        stdio: 'ignore',
      });
      const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
      return { proc, exited };
    };
    try {
      const first = run();
      for (let i = 0; ; i++) {
        const got = await fileIn(root, name);
        if (got && got.have > 1024 * 1024) break;
        if (i > 1200) throw new Error('the file never started to arrive');
        await new Promise((r) => setTimeout(r, 50));
      }
      first.proc.kill('SIGKILL');
      await first.exited;
      const killed = await fileIn(root, name);
      expect(killed?.state).toBe('partial');
      expect(killed!.have).toBeLessThan(FIVE_MB);

      const upBefore = throttled.stats.bytes.request;
      expect(await run().exited).toBe(0);
      expect(throttled.stats.bytes.request - upBefore).toBeLessThan(
        FIVE_MB - killed!.have + 512 * 1024,
      );
      expect((await fileIn(root, name))?.state).toBe('placed');
      expect(sha256(path.join(root.settings.complexObs.dataDir!, 'complex_obs', name))).toBe(
        sha256(path.join(ward.settings.complexObs.dataDir!, 'complex_obs', name)),
      );
    } finally {
      await throttled.close();
    }
  }, 180_000);

  it('keeps a file that arrives before its obs row in staging, and places it when the row comes', async () => {
    const name = 'scan_early_1.bin';
    await complexObs(child, name, 200_000);
    const from = (await filePlaces(child.pool, child.settings))!;
    const to = (await filePlaces(root.pool, root.settings))!;
    // The file goes straight to the parent, ahead of the row (as a relayed file can).
    const msg = await buildFiles(child.pool, from, root.nodeId, {
      budget: 1 << 20,
      optimistic: true,
    });
    await receiveFiles(root.pool, to, child.nodeId, msg);
    expect((await fileIn(root, name))?.state).toBe('staged');
    const target = path.join(to.complexDir, name);
    expect(fs.existsSync(target)).toBe(false);

    await tree.sync(child, root);
    // The next file message (any neighbour) places what waited.
    await buildFiles(root.pool, to, child.nodeId, { budget: 1 << 20, optimistic: false });
    expect((await fileIn(root, name))?.state).toBe('placed');
    expect(sha256(target)).toBe(sha256(path.join(from.complexDir, name)));
  }, 60_000);

  it('places a file where OpenMRS keeps complex obs on another disk', async () => {
    const other = fs.mkdtempSync(path.join('/dev/shm', 'cs-complex-'));
    try {
      const to = { ...(await filePlaces(root.pool, root.settings))!, complexDir: other };
      expect(fs.statSync(other).dev).not.toBe(fs.statSync(root.settings.complexObs.dataDir!).dev);
      await execute(root.pool, 'INSERT INTO obs (value_complex, uuid) VALUES (?, ?)', [
        'Photo|far_1.jpg',
        'obs-far-1',
      ]);
      const bytes = randomBytes(10_000);
      const sha = createHash('sha256').update(bytes).digest('hex');
      await receiveFiles(root.pool, to, child.nodeId, {
        offers: [{ obs: 'obs-far-1', name: 'far_1.jpg', size: bytes.length, sha256: sha }],
        have: [],
        chunks: [{ name: 'far_1.jpg', sha256: sha, offset: 0, data: bytes }],
      });
      expect((await fileIn(root, 'far_1.jpg'))?.state).toBe('placed');
      expect(fs.readFileSync(path.join(other, 'far_1.jpg')).equals(bytes)).toBe(true);
      expect(fs.readdirSync(other)).toEqual(['far_1.jpg']);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  it('answers a hostile file message over HTTP with 400 and one sentence, writing nothing', async () => {
    const header = Buffer.from(
      JSON.stringify({
        offers: [{ obs: 'o-1', name: '../../.bashrc', size: 4, sha256: 'a'.repeat(64) }],
        have: [],
        chunks: [],
      }),
    );
    const len = Buffer.alloc(4);
    len.writeUInt32BE(header.length);
    const body = Buffer.concat([Buffer.from('CSF1'), len, header]);
    const secret = readParentSecret(child.home)!;
    const answer = await rawPost(`${server.url}/v1/files`, body, {
      ...signedHeaders(body, { node: child.nodeId, secret, path: '/v1/files' }),
      'content-type': 'application/octet-stream',
    });
    expect(answer.status).toBe(400);
    expect(answer.text).toMatch(/^The complex obs file message names a file wrongly/);
    expect(await fileIn(root, '../../.bashrc')).toBeNull();
  });

  it('refuses a file over the size cap and a piece whose bytes do not match', async () => {
    const to = (await filePlaces(root.pool, root.settings))!;
    const sha = createHash('sha256').update('the real bytes').digest('hex');
    const big = { obs: 'obs-big', name: 'huge.bin', size: to.maxBytes + 1, sha256: sha };
    const bad = { obs: 'obs-bad', name: 'bad.bin', size: 14, sha256: sha };
    await receiveFiles(root.pool, to, child.nodeId, {
      offers: [big, bad],
      have: [],
      chunks: [{ name: 'bad.bin', sha256: sha, offset: 0, data: Buffer.from('the fake bytes') }],
    });
    expect((await fileIn(root, 'huge.bin'))?.state).toBe('refused');
    expect((await root.status()).complexObsFiles?.problem).toBe(
      `1 attached file from another computer was not taken because it is larger than the limit of ${root.settings.complexObs.maxFileMegabytes} MB (setting complexObs.maxFileMegabytes): huge.bin.`,
    );
    // Wrong bytes are dropped and the file starts over; nothing reaches complex_obs.
    expect(await fileIn(root, 'bad.bin')).toEqual({ have: 0, size: 14, state: 'partial' });
    expect(fs.existsSync(path.join(to.complexDir, 'bad.bin'))).toBe(false);

    // The same sender offers new content under that name before it was all here: it starts over.
    const other = createHash('sha256').update('new bytes').digest('hex');
    await receiveFiles(root.pool, to, child.nodeId, {
      offers: [{ ...bad, sha256: other, size: 9 }],
      have: [],
      chunks: [{ name: 'bad.bin', sha256: other, offset: 0, data: Buffer.from('new bytes') }],
    });
    expect(await fileIn(root, 'bad.bin')).toEqual({ have: 9, size: 9, state: 'staged' });

    // A nearly full disk takes no pieces (they are asked for again later), as it takes no rows.
    const full = { ...to, minFreeBytes: Number.MAX_SAFE_INTEGER };
    const bytes = Buffer.from('pieces wait');
    const waits = createHash('sha256').update(bytes).digest('hex');
    await receiveFiles(root.pool, full, child.nodeId, {
      offers: [{ obs: 'obs-full', name: 'full.bin', size: bytes.length, sha256: waits }],
      have: [],
      chunks: [{ name: 'full.bin', sha256: waits, offset: 0, data: bytes }],
    });
    expect(await fileIn(root, 'full.bin')).toEqual({
      have: 0,
      size: bytes.length,
      state: 'partial',
    });
    await receiveFiles(root.pool, to, child.nodeId, {
      offers: [],
      have: [],
      chunks: [{ name: 'full.bin', sha256: waits, offset: 0, data: bytes }],
    });
    expect((await fileIn(root, 'full.bin'))?.state).toBe('staged');

    // Refused for its size, the file is not wanted while the limit stands...
    const wanted = async (places: typeof to) =>
      (
        await buildFiles(root.pool, places, child.nodeId, { budget: 65_536, optimistic: false })
      ).have.find((h) => h.name === 'huge.bin');
    expect(await wanted(to)).toMatchObject({ offset: 0, done: true });
    // ...and asked for from the start once the limit is raised to take it.
    expect(await wanted({ ...to, maxBytes: big.size })).toMatchObject({ offset: 0, done: false });
    expect(await fileIn(root, 'huge.bin')).toEqual({ have: 0, size: big.size, state: 'partial' });
  });
});
