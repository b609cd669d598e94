// A separate engine process for crash tests: opens the node in the given home and picks up
// changes in a loop until it is killed.
import { Home } from '../../src/engine/config/home.js';
import { parseDbUrl } from '../../src/engine/db/url.js';
import { SyncNode } from '../../src/engine/node/node.js';

const [homeDir, url] = process.argv.slice(2);
const home = new Home(homeDir!);
const node = await SyncNode.open({
  db: parseDbUrl(url!),
  settings: home.requireSettings(),
  home,
  lock: 'wait',
});
// Ready once the first pickup (schema read included) is done: kills then land in pickup steps.
await node.pickup();
process.stdout.write('ready\n');
for (;;) {
  await node.pickup();
  await new Promise((r) => setTimeout(r, 5));
}
