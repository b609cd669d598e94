import { createOpenmrsShape } from '../../src/demo/openmrsShape.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { NodeService } from '../../src/engine/node/service.js';
import { ParentClient, readParentSecret } from '../../src/engine/transport/client.js';
import { startSyncServer, type SyncServer } from '../../src/engine/transport/server.js';
import { createTestDb } from '../../test/helpers/db.js';
import { cloneDatabase, pairChild } from '../../test/helpers/http.js';
import { Tree } from '../../test/helpers/tree.js';
import { startCountingProxy, type CountingProxy } from './throttle.js';

/*
 * Two real nodes on the OpenMRS-shaped demo schema: a root serving HTTP (the same server as
 * `clinic-sync serve`) and a child cloned from it and paired with a pairing code, whose
 * ParentClient reaches the root through a counting (and, if asked, throttling) TCP proxy.
 */

export interface TwoNodes {
  tree: Tree;
  root: SyncNode;
  child: SyncNode;
  server: SyncServer;
  proxy: CountingProxy;
  client: ParentClient;
  /** what `clinic-sync sync` runs on the child */
  service: NodeService;
  close(): Promise<void>;
}

export async function twoNodes(
  opts: { bytesPerSecond?: number; beforeClone?: (root: SyncNode) => Promise<void> } = {},
): Promise<TwoNodes> {
  const tree = new Tree();
  let server: SyncServer | null = null;
  try {
    const db = await createTestDb('csbench_root');
    await createOpenmrsShape(db.pool);
    const root = await tree.root(db, 'district');
    await opts.beforeClone?.(root);
    server = await startSyncServer({ node: root, host: '127.0.0.1', port: 0 });
    const { node: child } = await cloneDatabase(tree, root, 'centre', server.url);
    await (await pairChild(child, root, server.url)).close();
    const target = { host: server.host, port: server.port };
    const link = async (rate: number) => {
      const proxy = await startCountingProxy(target, rate);
      const client = new ParentClient({
        url: proxy.url,
        // A 1 kbit/s link needs minutes for a big batch.
        timeoutSeconds: 600,
        compression: child.settings.sync.compression,
        nodeId: child.nodeId,
        secret: readParentSecret(child.home),
        parentNodeId: root.nodeId,
      });
      return { proxy, client, service: new NodeService(child, client) };
    };
    const s = server;
    let closed = false;
    const nodes: TwoNodes = {
      tree,
      root,
      child,
      server: s,
      ...(await link(opts.bytesPerSecond ?? Infinity)),
      async close() {
        if (closed) return;
        closed = true;
        await nodes.client.close().catch(() => undefined);
        await nodes.proxy.close().catch(() => undefined);
        await s.close().catch(() => undefined);
        await tree.close();
      },
    };
    return nodes;
  } catch (e) {
    await server?.close().catch(() => undefined);
    await tree.close().catch(() => undefined);
    throw e;
  }
}
