import { execSync } from 'node:child_process';
import { request } from 'undici';
import { Home } from '../../src/engine/config/home.js';
import { defaultSettings } from '../../src/engine/config/settings.js';
import { dbUrlOf } from '../../src/engine/db/url.js';
import { SyncNode } from '../../src/engine/node/node.js';
import { newNonce, requestHeaders, sha256Hex } from '../../src/engine/transport/auth.js';
import { ParentClient, writeParentSecret } from '../../src/engine/transport/client.js';
import { createPairingCode } from '../../src/engine/transport/pairing.js';
import { createTestDb, SERVER, type TestDb } from './db.js';
import { tempHome } from './node.js';
import type { Tree } from './tree.js';

/**
 * Copies the parent's database (data and ClinicSync state, one consistent dump) into a new
 * database and adopts it as a child. Unlike Tree.clone, the parent is not told: the child joins
 * over HTTP with a pairing code, as a real one does.
 */
export async function cloneDatabase(
  tree: Tree,
  parent: SyncNode,
  name: string,
  parentUrl = 'http://parent.invalid:8750',
): Promise<{ node: SyncNode; db: TestDb; home: Home }> {
  await parent.pickup();
  const db = await createTestDb('cs_child');
  const conn = `-h ${SERVER.host} -P ${SERVER.port} -u ${SERVER.user}`;
  execSync(
    `mariadb-dump ${conn} --single-transaction --routines --triggers --no-tablespaces --skip-comments ${parent.db.database} | mariadb ${conn} ${db.name}`,
    {
      env: { ...process.env, MYSQL_PWD: SERVER.password },
      stdio: 'pipe',
      maxBuffer: 256 * 1024 * 1024,
    },
  );
  const home = tempHome();
  const settings = defaultSettings({
    db: dbUrlOf(db.target),
    name,
    role: 'child',
    parent: parentUrl,
  });
  home.save(settings);
  const parentName = (await parent.status()).name;
  const node = await SyncNode.adoptClone({
    db: db.target,
    name,
    settings,
    home,
    parent: {
      nodeId: parent.nodeId,
      name: parentName,
      incarnation: parent.incarnation,
      url: parentUrl,
    },
  });
  tree.nodes.push(node);
  tree.dbs.push(db);
  return { node, db, home };
}

/** Pairs a child with the parent at `url` with a fresh code; its secret lands in its home. */
export async function pairChild(
  child: SyncNode,
  parent: SyncNode,
  url: string,
  opts: { now?: () => number; compression?: boolean } = {},
): Promise<ParentClient> {
  const { code } = await createPairingCode(parent.pool, 60);
  const client = new ParentClient({
    url,
    compression: opts.compression ?? true,
    timeoutSeconds: 30,
    ...(opts.now ? { now: opts.now } : {}),
  });
  const name = (await child.status()).name;
  const result = await client.pair(code, {
    name,
    nodeId: child.nodeId,
    incarnation: child.incarnation,
  });
  writeParentSecret(child.home, result.secret);
  return client;
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

/** A POST built by hand, for requests a well-behaved client never sends. */
export async function rawPost(
  url: string,
  body: Buffer,
  headers: Record<string, string> = {},
): Promise<RawAnswer> {
  const res = await request(url, { method: 'POST', headers, body });
  const data = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body: data, text: data.toString('utf8') };
}

export interface SignOptions {
  node: string;
  secret: Buffer;
  /** on the parent's clock; default now */
  time?: number;
  nonce?: string;
  path?: string;
}

/** The signed headers for a body, as a child would send them (or with whatever is overridden). */
export function signedHeaders(body: Buffer, o: SignOptions): Record<string, string> {
  return {
    'content-type': 'application/xml',
    ...requestHeaders(o.secret, {
      method: 'POST',
      path: o.path ?? '/v1/exchange',
      node: o.node,
      time: String(o.time ?? Date.now()),
      nonce: o.nonce ?? newNonce(),
      bodySha256: sha256Hex(body),
    }),
  };
}
