import fs from 'node:fs';
import { main } from '../../src/cli/main.js';

/*
 * Runs `clinic-sync ARGS…` in this process, as bin/clinic-sync.js does, and when it ends writes
 * this process's peak resident memory (bytes) to the file named by CLINIC_SYNC_BENCH_RSS_FILE.
 * Started as `node --import tsx bench/lib/measured.ts ARGS…` by the benches.
 */

const file = process.env.CLINIC_SYNC_BENCH_RSS_FILE;
const code = await main(process.argv.slice(2));
if (file) fs.writeFileSync(file, String(process.resourceUsage().maxRSS * 1024));
process.exitCode = code;
