/**
 * A stand-in engine for the lock tests: takes the node lock of the database at argv[2], says
 * `locked <connection id>` on stdout, then sleeps until it is killed.
 * usage: node --import tsx test/helpers/lock-holder.ts mysql://root@127.0.0.1:3306/db 'clinic-sync serve'
 */
import { openPool } from '../../src/engine/db/pool.js';
import { parseDbUrl } from '../../src/engine/db/url.js';
import { acquireNodeLock, describeThisProcess } from '../../src/engine/node/lock.js';

const target = parseDbUrl(process.argv[2] ?? '');
const pool = openPool(target, { connectionLimit: 2 });
const lock = await acquireNodeLock(pool, target.database, {
  wait: false,
  holderInfo: describeThisProcess(process.argv[3] ?? 'lock-holder'),
});
process.stdout.write(`locked ${lock.connectionId}\n`);
setInterval(() => undefined, 1 << 30);
