import { randomBytes } from 'node:crypto';
import type { Pool } from '../db/pool.js';
import { execute, explainDbError, openPool, queryRows } from '../db/pool.js';
import type { DbTarget } from '../db/url.js';
import { checkPrivileges } from '../db/privileges.js';
import { SyncError, isSyncError } from '../errors.js';
import type { Home } from '../config/home.js';
import type { Settings } from '../config/settings.js';
import { Capture } from '../capture/capture.js';
import { acquireNodeLock, describeThisProcess, type NodeLock } from './lock.js';
import { getMeta, setMeta } from './meta.js';
import { isInstalled, migrate } from './migrations.js';
import type { NodeStatus } from './types.js';
import { applyEnvelope, type ApplyResult } from '../apply/apply.js';
import type { Envelope } from '../protocol/types.js';
import { buildBatch, type Limits, type OutgoingContext } from './outgoing.js';
import type { TablePlan } from '../identity/plan.js';
import { applyClockFixes, describeOffset } from '../clock/fixes.js';
import { hlcFromMillis } from '../clock/hlc.js';
import { adoptAsChild, type ParentInfo } from '../clone/adopt.js';
import { nameFileChild } from '../clone/snapshotWriter.js';
import { addPeer, listPeers, recordPeerVv, type Peer } from './peers.js';
import { heldByPeerNotHere, ownChanges, pendingFor, pendingForAnyChild } from './pending.js';
import { lastExchanges } from './history.js';
import { parkedWarning } from './parkedWarning.js';
import { OpenmrsRefresher, queueRefreshes, refreshStatus } from '../openmrs/refresh.js';
import { filesStatus } from '../files/status.js';
import { aboutThisNode, declareShapes } from './declare.js';
import { PeerShapes } from '../apply/shapes.js';
import { introspect } from '../db/schema.js';
import { identifierWarning, rememberIdSources } from '../openmrs/idgen.js';

/**
 * 'wait' for another engine to finish, 'try' and fail at once, 'prefer' to take the lock when free
 * and otherwise read without it (status while `serve` runs), or 'none' for read-only use.
 */
export type LockMode = 'wait' | 'try' | 'prefer' | 'none';

/** What an exchange works with, from one schema check: table plans and which tables sync. */
interface EngineParts {
  plans: Map<string, TablePlan>;
  selected: (table: string) => boolean;
}

interface OpenOptions {
  db: DbTarget;
  settings: Settings;
  home: Home;
  lock?: LockMode;
  /** what this engine is doing, shown to a second engine that finds the node busy */
  purpose?: string;
}

/** One node: its database, its capture, and (later) its neighbours. Both hosts build this. */
export class SyncNode {
  /** This node's wall clock; tests set it to play a laptop whose clock is wrong. */
  now: () => number = Date.now;

  private constructor(
    readonly pool: Pool,
    readonly db: DbTarget,
    readonly settings: Settings,
    readonly home: Home,
    readonly nodeId: string,
    readonly incarnation: string,
    private lock: NodeLock | null,
  ) {
    this.capture = new Capture(pool, db.database, nodeId, settings.tables);
    // Only the engine holding the node's lock talks to its OpenMRS.
    this.openmrs =
      lock && settings.openmrs.url !== '' ? new OpenmrsRefresher(pool, settings, home) : null;
  }

  readonly capture: Capture;
  /** refreshes the running OpenMRS after applied batches, when the settings name one */
  readonly openmrs: OpenmrsRefresher | null;

  /** Makes a database the root of a tree: privileges checked, tables made, triggers installed. */
  static async init(opts: {
    db: DbTarget;
    name: string;
    settings: Settings;
    home: Home;
  }): Promise<SyncNode> {
    const pool = await connect(opts.db);
    try {
      const privileges = await checkPrivileges(pool, opts.db.database);
      if (!privileges.ok)
        throw new SyncError(
          'privileges',
          privileges.sentence ?? 'The database user lacks privileges ClinicSync needs.',
        );
      if (await isInstalled(pool)) {
        throw new SyncError(
          'state',
          `The database "${opts.db.database}" is already a ClinicSync node; use it as it is, or run "clinic-sync uninstall --db URL" first to start over.`,
        );
      }
      const lock = await acquireNodeLock(pool, opts.db.database, {
        wait: false,
        holderInfo: describeThisProcess('clinic-sync init'),
      });
      await migrate(pool);
      const nodeId = randomBytes(8).toString('hex');
      const incarnation = randomBytes(4).toString('hex');
      await setMeta(pool, 'node_id', nodeId);
      await setMeta(pool, 'incarnation', incarnation);
      await setMeta(pool, 'name', opts.name);
      await setMeta(pool, 'role', 'root');
      await setMeta(pool, 'seq', '0');
      await setMeta(pool, 'hlc', '0');
      await setMeta(pool, 'capture_paused', '0');
      const node = new SyncNode(pool, opts.db, opts.settings, opts.home, nodeId, incarnation, lock);
      await node.capture.install();
      return node;
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw isSyncError(e) ? e : explainDbError(e, opts.db);
    }
  }

  /**
   * Makes a child of a database that holds a consistent copy of its parent (data and ClinicSync
   * state from one snapshot). The clone over the network and from a file both end here.
   */
  static async adoptClone(opts: {
    db: DbTarget;
    name: string;
    settings: Settings;
    home: Home;
    parent: ParentInfo;
    /** the id and incarnation the parent registered this child under, where it did (pairing) */
    identity?: { nodeId: string; incarnation: string };
  }): Promise<SyncNode> {
    const pool = await connect(opts.db);
    try {
      await migrate(pool);
      await adoptAsChild(pool, opts.name, opts.parent, opts.identity);
    } finally {
      await pool.end().catch(() => undefined);
    }
    return SyncNode.open({ db: opts.db, settings: opts.settings, home: opts.home, lock: 'try' });
  }

  /** Opens an initialised node. */
  static async open(opts: OpenOptions): Promise<SyncNode> {
    const pool = await connect(opts.db);
    try {
      // An unfinished clone first: its marker is written before any of the copied rows.
      if (await cloneUnfinished(pool)) {
        throw new SyncError(
          'state',
          `The database "${opts.db.database}" holds a clone that did not finish and cannot be used; run the same "clinic-sync clone" command again (with the same --home) to finish it.`,
        );
      }
      if (!(await isInstalled(pool))) {
        throw new SyncError(
          'state',
          `The database "${opts.db.database}" is not a ClinicSync node; run "clinic-sync init" (or clone) first.`,
        );
      }
      const mode = opts.lock ?? 'wait';
      const lock =
        mode === 'none'
          ? null
          : await takeLock(pool, opts.db.database, mode, opts.purpose ?? 'engine');
      await migrate(pool);
      const nodeId = (await getMeta(pool, 'node_id'))!;
      const incarnation = (await getMeta(pool, 'incarnation'))!;
      const node = new SyncNode(pool, opts.db, opts.settings, opts.home, nodeId, incarnation, lock);
      node.openmrs?.start();
      return node;
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw isSyncError(e) ? e : explainDbError(e, opts.db);
    }
  }

  /*
   * A parent answers many children at once, and a middle node also syncs with its own parent.
   * What appends to clinicsync_log (pickup, apply) and what reads it by position (outgoing) runs
   * one at a time here: buildBatch remembers how far a neighbour has acknowledged by log position
   * (lsn), which is only safe while log rows become visible in lsn order.
   */
  private queue: Promise<unknown> = Promise.resolve();

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Picks up every change committed so far; only the engine holding the node's lock may. */
  async pickup(): Promise<number> {
    return this.exclusive(() => this.pickupNow());
  }

  /** `reconciled`: the caller has just checked the schema (engineParts). */
  private async pickupNow(reconciled = false): Promise<number> {
    if (!this.lock) return 0;
    if (await this.capture.isPaused()) return 0;
    return reconciled ? this.capture.pickupReconciled() : this.capture.pickupAll();
  }

  /**
   * The schema checked (reconcile), then everything committed so far picked up, and the parts an
   * exchange works with. The schema check reads information_schema (a few ms); an exchange does
   * it once, not once for picking up and again for its table plans.
   */
  private async engineParts(): Promise<EngineParts> {
    await this.capture.reconcile();
    await this.pickupNow(true);
    return { plans: this.capture.plans(), selected: this.capture.synced() };
  }

  /**
   * The next batch for a neighbour: everything it has not acknowledged, within the settings'
   * limits or smaller ones (a slow link's: see pace.ts).
   */
  async outgoing(peer: string, limits?: Limits): Promise<Envelope> {
    return this.exclusive(async () => this.outgoingNow(peer, await this.engineParts(), limits));
  }

  private async outgoingNow(peer: string, parts: EngineParts, limits?: Limits): Promise<Envelope> {
    const { plans, selected } = parts;
    const env = await buildBatch(await this.outgoingContext(parts), peer, {
      records: Math.min(limits?.records ?? Infinity, this.settings.sync.batchRecords),
      bytes: Math.min(limits?.bytes ?? Infinity, this.settings.sync.batchBytes),
    });
    return declareShapes(
      this.pool,
      plans,
      selected,
      peer,
      env,
      await aboutThisNode(this.pool, peer, plans),
    );
  }

  /** What building a batch needs: this node, its name as the tree knows it, and the parts. */
  private async outgoingContext(parts: EngineParts): Promise<OutgoingContext> {
    return {
      db: this.pool,
      nodeId: this.nodeId,
      incarnation: this.incarnation,
      name: (await getMeta(this.pool, 'name')) ?? this.settings.name,
      plans: parts.plans,
      selected: parts.selected,
      now: this.now(),
    };
  }

  /**
   * Every batch a neighbour has not acknowledged, one after another, for a transfer file (USB):
   * `take` receives each and answers false to stop early (the key is full). Nothing appends to
   * the log meanwhile, so the batches follow one another without a gap or a repeat.
   */
  async outgoingAll(peer: string, take: (env: Envelope) => Promise<boolean>): Promise<void> {
    return this.exclusive(async () => {
      const parts = await this.engineParts();
      const { plans, selected } = parts;
      const ctx = await this.outgoingContext(parts);
      const resume = { lsn: 0n };
      const about = await aboutThisNode(this.pool, peer, plans);
      for (;;) {
        const env = await buildBatch(
          { ...ctx, now: this.now() },
          peer,
          { records: this.settings.sync.batchRecords, bytes: this.settings.sync.batchBytes },
          resume,
        );
        if (
          !(await take(await declareShapes(this.pool, plans, selected, peer, env, about))) ||
          !env.more
        )
          return;
      }
    });
  }

  /**
   * Applies a neighbour's batch and records what it holds (its acknowledgement). Local changes are
   * picked up first, so they carry their clocks into the comparison. A batch read from a file
   * (`fromFile`) was written hours or days ago: its time says nothing of the sender's clock now,
   * so the sender's offset last measured over the network stands in for it (none: 0).
   */
  async incoming(env: Envelope, opts: { fromFile?: boolean } = {}): Promise<ApplyResult> {
    const peerId = await this.senderOf(env);
    return this.exclusive(async () =>
      this.incomingNow(env, peerId, await this.engineParts(), opts.fromFile === true),
    );
  }

  /** The neighbour a batch comes from, refused unless it is one and the batch is for this node. */
  private async senderOf(env: Envelope): Promise<string> {
    if (env.to !== this.nodeId) {
      throw new SyncError('protocol', 'This batch is meant for another node; it was not applied.');
    }
    const peer = (await listPeers(this.pool)).find((p) => p.nodeId === env.from.node);
    if (!peer)
      throw new SyncError(
        'protocol',
        `The node ${env.from.node} is not a neighbour of this one; nothing was applied.`,
      );
    // A child registered by a snapshot file is listed by a placeholder until it names itself.
    if (peer.relation === 'child' && env.from.name) {
      await nameFileChild(this.pool, peer.nodeId, env.from.name);
    }
    return peer.nodeId;
  }

  private async incomingNow(
    env: Envelope,
    peerId: string,
    parts: EngineParts,
    fromFile: boolean,
  ): Promise<ApplyResult> {
    const { plans, selected } = parts;
    // The parent's verdict on this node's clocks first, so the changes below are judged against it.
    if (env.fixes) await applyClockFixes(this.pool, this.nodeId, env.fixes);
    const nowMs = this.now();
    const aheadMs = this.settings.sync.clockAheadMinutes * 60_000;
    const senderAheadMs = fromFile ? await this.measuredAhead(peerId) : Number(env.time) - nowMs;
    const result = await applyEnvelope(
      {
        pool: this.pool,
        plans,
        colsets: this.capture.colsets,
        nodeId: this.nodeId,
        selected,
        clock: { nowMs, aheadMs, senderAheadMs },
      },
      env,
      peerId,
    );
    await recordPeerVv(this.pool, peerId, env.vv);
    await this.refreshOpenmrs();
    // A sender that declares its software also declares its identifier sources, and leaves `ids`
    // out when it has none left: that forgets what it said before.
    if (env.identifierSources !== undefined || env.software !== undefined)
      await rememberIdSources(this.pool, peerId, env.identifierSources ?? '');
    if (!fromFile) {
      await execute(this.pool, 'UPDATE clinicsync_peer SET clock_ahead_ms = ? WHERE node_id = ?', [
        Number(env.time) - nowMs,
        peerId,
      ]);
    }
    // A received clock moves this node's clock forward, so its later changes order after it; never
    // past the skew bound, so one wrong laptop cannot drag the tree's clocks into the future.
    const cap = hlcFromMillis(nowMs + aheadMs);
    const seen = [result.maxHlc, BigInt(env.hlc)]
      .map((h) => (h > cap ? cap : h))
      .reduce((a, b) => (a > b ? a : b));
    await execute(
      this.pool,
      "UPDATE clinicsync_meta SET v = GREATEST(CAST(v AS UNSIGNED), CAST(? AS UNSIGNED)) WHERE k = 'hlc'",
      [seen.toString()],
    );
    return result;
  }

  /**
   * Queues what the running OpenMRS must refresh for the rows just applied, and starts sending it
   * in the background (openmrs/refresh.ts). Never fails the sync: what could not be queued now is
   * still in the log and is queued after the next batch.
   */
  private async refreshOpenmrs(): Promise<void> {
    try {
      await queueRefreshes(this.pool, this.nodeId, this.settings.openmrs.url !== '');
      this.openmrs?.kick();
    } catch {
      // see above
    }
  }

  /** How far a neighbour's clock ran ahead of this one at the last exchange, in ms (0: unknown). */
  private async measuredAhead(peerId: string): Promise<number> {
    const [r] = await queryRows(
      this.pool,
      'SELECT clock_ahead_ms FROM clinicsync_peer WHERE node_id = ?',
      [peerId],
    );
    return Number(r?.clock_ahead_ms ?? 0);
  }

  /**
   * A parent's side of one exchange: apply the child's batch, answer with one for the child
   * (no bigger than `limits`, where the child asks for less over a slow link).
   */
  async answer(env: Envelope, limits?: Limits): Promise<{ result: ApplyResult; reply: Envelope }> {
    const peerId = await this.senderOf(env);
    // One schema check serves both halves; what was edited here meanwhile is still picked up.
    const { result, reply } = await this.exclusive(async () => {
      const parts = await this.engineParts();
      const applied = await this.incomingNow(env, peerId, parts, false);
      await this.pickupNow(true);
      return { result: applied, reply: await this.outgoingNow(peerId, parts, limits) };
    });
    return {
      result,
      reply: Object.keys(result.fixes).length ? { ...reply, fixes: result.fixes } : reply,
    };
  }

  /** How each table here is identified: what a received batch is checked against (transport). */
  async tablePlans(): Promise<Map<string, TablePlan>> {
    return this.exclusive(async () => {
      await this.capture.reconcile();
      return this.capture.plans();
    });
  }

  async addPeer(p: {
    nodeId: string;
    name: string;
    relation: 'parent' | 'child';
    incarnation?: string;
    url?: string;
  }): Promise<void> {
    await addPeer(this.pool, p);
  }

  async peers(): Promise<Peer[]> {
    return listPeers(this.pool);
  }

  async status(): Promise<NodeStatus> {
    await this.pickup();
    const peers = await listPeers(this.pool);
    const parent = peers.find((p) => p.relation === 'parent');
    const children = peers.filter((p) => p.relation === 'child');
    let pendingOut: number;
    if (parent) pendingOut = await pendingFor(this.pool, parent.nodeId);
    else if (children.length) pendingOut = await pendingForAnyChild(this.pool);
    else pendingOut = await ownChanges(this.pool, this.nodeId);
    if (!this.lock) {
      // Another engine runs this node: changes it has not picked up yet count by the rows they touched.
      const [unpicked] = await queryRows(
        this.pool,
        'SELECT COUNT(DISTINCT tbl, lkey) AS n FROM clinicsync_capture',
      );
      pendingOut += Number(unpicked!.n);
    }
    const [parked] = await queryRows(this.pool, 'SELECT COUNT(*) AS n FROM clinicsync_parked');
    const [size] = await queryRows(
      this.pool,
      `SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS b FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE 'clinicsync\\_%'`,
      [this.db.database],
    );
    const history = await lastExchanges(this.pool);
    return {
      name: (await getMeta(this.pool, 'name')) ?? this.settings.name,
      role: (await getMeta(this.pool, 'role')) === 'child' ? 'child' : 'root',
      parent: this.settings.parent,
      pendingOut,
      pendingIn: parent ? await heldByPeerNotHere(this.pool, parent.nodeId) : 0,
      parked: Number(parked!.n),
      parkedWarning: await parkedWarning(this.pool, this.now()),
      children: await Promise.all(
        children.map(async (c) => ({
          name: c.name,
          nodeId: c.nodeId,
          lastContactAt: c.lastContactAt,
          pendingOut: await pendingFor(this.pool, c.nodeId),
          pendingIn: await heldByPeerNotHere(this.pool, c.nodeId),
        })),
      ),
      lastSuccessAt: history.lastSuccessAt,
      lastError: history.lastError,
      clockWarning: await this.clockWarning(peers),
      journalBytes: Number(size!.b),
      capturePaused: await this.capture.isPaused(),
      nodeId: this.nodeId,
      incarnation: this.incarnation,
      openmrsRefresh: await refreshStatus(this.pool, this.settings),
      complexObsFiles: await filesStatus(this.pool, this.settings),
      schemaWarning: await this.schemaWarning(),
      identifierWarning: await identifierWarning(this.pool, peers),
    };
  }

  /** Why tables wait for an upgrade, one sentence per neighbour whose columns differ. */
  private async schemaWarning(): Promise<string | null> {
    let local: (table: string) => string | undefined;
    try {
      const plans = this.capture.plans();
      local = (t) => plans.get(t)?.table.fingerprint;
    } catch {
      // another engine runs this node: read the tables as they are
      const schema = await introspect(this.pool, this.db.database);
      local = (t) => schema.tables.get(t)?.fingerprint;
    }
    const shapes = await PeerShapes.load(this.pool, local);
    const sentences: string[] = [];
    for (const gap of shapes.gaps()) sentences.push(await shapes.reason(gap.tables, gap.peer));
    return sentences.length ? sentences.join(' ') : null;
  }

  /** A sentence naming the node whose clock is off by more than the bound, and by how much. */
  private async clockWarning(peers: Peer[]): Promise<string | null> {
    const bound = this.settings.sync.clockAheadMinutes * 60_000;
    const rows = await queryRows(
      this.pool,
      'SELECT node_id, clock_ahead_ms FROM clinicsync_peer WHERE clock_ahead_ms IS NOT NULL',
    );
    for (const r of rows) {
      const ahead = Number(r.clock_ahead_ms);
      if (Math.abs(ahead) <= bound) continue;
      const peer = peers.find((p) => p.nodeId === String(r.node_id));
      const way = (mine: boolean) => (ahead > 0 === mine ? 'behind' : 'ahead of');
      if (peer?.relation === 'parent') {
        return `This computer's clock is ${describeOffset(ahead)} ${way(true)} the main server's (${peer.name}); set the right date and time. Meanwhile its changes are dated by the main server's clock.`;
      }
      return `The clock of ${peer?.name ?? String(r.node_id)} is ${describeOffset(ahead)} ${way(false)} this server's; its changes are dated by this server's clock until it is set right.`;
    }
    return null;
  }

  async pauseCapture(): Promise<void> {
    await this.capture.pause();
  }

  async resumeCapture(): Promise<void> {
    await this.capture.resume();
  }

  async close(): Promise<void> {
    await this.openmrs?.stop();
    await this.lock?.release().catch(() => undefined);
    this.lock = null;
    await this.pool.end().catch(() => undefined);
  }
}

async function cloneUnfinished(pool: Pool): Promise<boolean> {
  const [meta] = await queryRows(
    pool,
    "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'clinicsync_meta'",
  );
  return meta !== undefined && (await getMeta(pool, 'clone_incomplete')) !== null;
}

async function connect(db: DbTarget): Promise<Pool> {
  const pool = openPool(db);
  try {
    await pool.query('SELECT 1');
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw explainDbError(e, db);
  }
  return pool;
}

async function takeLock(
  pool: Pool,
  database: string,
  mode: Exclude<LockMode, 'none'>,
  purpose: string,
): Promise<NodeLock | null> {
  const holderInfo = describeThisProcess(`clinic-sync ${purpose}`);
  try {
    return await acquireNodeLock(pool, database, { wait: mode === 'wait', holderInfo });
  } catch (e) {
    if (mode === 'prefer' && isSyncError(e) && e.kind === 'locked') return null;
    throw e;
  }
}
