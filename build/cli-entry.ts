// The packaged app's `clinic-sync`: the CLI bundled into one file, run by the app's own
// executable as Node (ELECTRON_RUN_AS_NODE=1), so a clinic needs no Node.js of its own.
import { main } from '../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
