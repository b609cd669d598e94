import { queryRows } from '../engine/db/pool.js';
import { isSyncError } from '../engine/errors.js';
import { Cleanup } from './cleanup.js';
import {
  addPatients,
  conceptName,
  correctName,
  createOpenmrsShape,
  voidObs,
  type AddedPatients,
  type PatientName,
} from './openmrsShape.js';
import { formatLog, readOutgoingLog, type OutgoingEntry } from './outgoingLog.js';
import { findDemoServer } from './server.js';
import { createSiteDatabase, initRoot, type DemoSite } from './sites.js';

/*
 * `npm run demo`: ClinicSync's capture at work on a throwaway OpenMRS-shaped database. A clinic
 * registers patients, corrects a name and voids an obs; the node picks every change up into its
 * outgoing log exactly once. (When the network parts exist this grows into a parent and two
 * cloned children editing and syncing: each is one more DemoSite on the same server.)
 */

type Say = (line: string) => void;

const PARENT_NAME = 'Amani Hospital';

/** The demo's patients; the first one's family name is misspelt at registration. */
const PATIENTS: PatientName[] = [
  { givenName: 'Aline', familyName: 'Mukamna', gender: 'F' },
  { givenName: 'Emmanuel', familyName: 'Habimana', gender: 'M' },
  { givenName: 'Espérance', familyName: 'Uwase', gender: 'F' },
];
const CORRECTED_FAMILY_NAME = 'Mukamana';

/** A row change the clinic made, as the outgoing log must show it. */
interface Expected {
  table: string;
  key: string;
  op: 'I' | 'U';
  columns?: string[];
}

async function runDemo(say: Say, cleanup: Cleanup): Promise<number> {
  const server = await findDemoServer({ note: say });
  cleanup.add('stop the database server', () => server.stop());
  say(`Database server: ${server.description}.`);

  const parent = await createSiteDatabase(server, PARENT_NAME, cleanup);
  const shape = await createOpenmrsShape(parent.app);
  say(
    `Created database ${parent.database} in the OpenMRS shape: ${shape.tables} tables, ${shape.users} users, ${shape.locations} locations, ${shape.concepts} concepts.`,
  );

  const node = await initRoot(parent);
  say(
    `Made it the root node "${parent.name}" (node id ${node.nodeId}; home ${parent.home.dir}); capture triggers are on.`,
  );

  const expected: Expected[] = [];
  const added = await registerPatients(parent, say, expected);

  const first = await node.pickup();
  say(`Pickup: ${first} changes moved from the capture journal into the outgoing log.`);

  await clerkCorrections(parent, added, say, expected);
  const second = await node.pickup();
  say(`Pickup: ${second} more changes (updates carry only the columns that changed).`);

  const status = await node.status();
  say(`Status: ${JSON.stringify(status)}`);

  const log = await readOutgoingLog(parent.app);
  say('Outgoing log (clinicsync_log), the first change to each table and the corrections:');
  for (const line of formatLog(sample(log, 2))) say(line);

  const again = await node.pickup();
  checkExactlyOnce(log, expected, again, status.pendingOut);
  say(
    `Checked against the clinic's own writes: each of the ${expected.length} row changes is in the log once, sequences 1-${log.length} have no gap, and another pickup finds nothing.`,
  );
  return log.length;
}

/** Registration desk and vitals, as OpenMRS writes them. */
async function registerPatients(
  site: DemoSite,
  say: Say,
  expected: Expected[],
): Promise<AddedPatients> {
  const added = await addPatients(site.app, {
    count: PATIENTS.length,
    obsPerEncounter: 5,
    names: PATIENTS,
  });
  say(
    `Registered ${added.patients.length} patients as a clinic would: ${added.totalRows} rows in ${added.transactions} transactions (person, name, patient, OpenMRS ID; then a visit, a vitals encounter and 5 obs each):`,
  );
  for (const p of added.patients) {
    say(`  ${p.identifier}  ${p.givenName} ${p.familyName} (${p.gender}, born ${p.birthdate})`);
    const ins = (table: string, key: number) => expected.push({ table, key: String(key), op: 'I' });
    ins('person', p.personId);
    ins('person_name', p.personNameId);
    ins('patient', p.personId);
    ins('patient_identifier', p.patientIdentifierId);
    ins('visit', p.visitId);
    ins('encounter', p.encounterId);
    for (const id of p.obsIds) ins('obs', id);
  }
  return added;
}

/** A data clerk fixes the misspelt name; a nurse voids a temperature entered in error. */
async function clerkCorrections(
  site: DemoSite,
  added: AddedPatients,
  say: Say,
  expected: Expected[],
): Promise<void> {
  const misspelt = added.patients[0]!;
  await correctName(site.app, misspelt.personNameId, { familyName: CORRECTED_FAMILY_NAME });
  expected.push({
    table: 'person_name',
    key: String(misspelt.personNameId),
    op: 'U',
    columns: ['family_name', 'changed_by', 'date_changed'],
  });
  say(
    `Corrected a name: ${misspelt.givenName} ${misspelt.familyName} -> ${misspelt.givenName} ${CORRECTED_FAMILY_NAME}.`,
  );

  const patient = added.patients[1]!;
  const obsId = patient.obsIds[2]!;
  const [obs] = await queryRows(
    site.app,
    'SELECT concept_id, value_numeric FROM obs WHERE obs_id = ?',
    [obsId],
  );
  await voidObs(site.app, obsId, 'Entered in error');
  expected.push({
    table: 'obs',
    key: String(obsId),
    op: 'U',
    columns: ['voided', 'voided_by', 'date_voided', 'void_reason'],
  });
  say(
    `Voided an obs entered in error: ${conceptName(Number(obs!.concept_id))} ${String(obs!.value_numeric)} for ${patient.givenName} ${patient.familyName}.`,
  );
}

/** The first entry of each table and the last `last` entries. */
function sample(log: OutgoingEntry[], last: number): OutgoingEntry[] {
  const tables = new Set<string>();
  return log.filter((e, i) => {
    const firstOfTable = !tables.has(e.table);
    tables.add(e.table);
    return firstOfTable || i >= log.length - last;
  });
}

/** The log holds each expected change once, in a dense sequence, and nothing else. */
function checkExactlyOnce(
  log: OutgoingEntry[],
  expected: Expected[],
  laterPickup: number,
  pendingOut: number,
): void {
  const id = (e: { table: string; key: string; op: string }) => `${e.table} ${e.key} ${e.op}`;
  const want = new Map(expected.map((e) => [id(e), e]));
  const seen = new Set<string>();
  const problems: string[] = [];
  log.forEach((entry, i) => {
    if (entry.seq !== i + 1) problems.push(`sequence ${i + 1} is ${entry.seq}`);
    const k = id(entry);
    const w = want.get(k);
    if (!w) problems.push(`unexpected ${k}`);
    else if (seen.has(k)) problems.push(`${k} twice`);
    else if (w.columns && [...entry.columns].sort().join() !== [...w.columns].sort().join()) {
      problems.push(`${k} carries ${entry.columns.join('/')} instead of ${w.columns.join('/')}`);
    }
    seen.add(k);
  });
  for (const k of want.keys()) if (!seen.has(k)) problems.push(`missing ${k}`);
  if (laterPickup !== 0) problems.push(`another pickup found ${laterPickup} changes`);
  if (pendingOut !== log.length) problems.push(`status counts ${pendingOut} pending changes`);
  if (problems.length) {
    throw new Error(
      `capture did not record the clinic's ${expected.length} changes exactly once (${problems.slice(0, 3).join('; ')})`,
    );
  }
}

async function main(): Promise<number> {
  const started = Date.now();
  // A reader that goes away (`npm run demo | head`) must not stop the demo before it cleans up.
  process.stdout.on('error', () => undefined);
  const write: Say = (line) => process.stdout.write(`${line}\n`);
  const cleanup = new Cleanup();
  // After Ctrl-C the steps still running fail one after the other; they need not say so.
  const say: Say = (line) => (cleanup.interruptedBy ? undefined : write(line));
  cleanup.catchSignals(write);
  say('ClinicSync demo: capture at work on a throwaway OpenMRS-shaped database.');
  let captured = 0;
  let failure: unknown = null;
  try {
    captured = await runDemo(say, cleanup);
  } catch (e) {
    failure = e;
  }
  const leftBehind = await cleanup.run();
  cleanup.releaseSignals();
  if (cleanup.interruptedBy) return 130;
  if (failure !== null) {
    process.stderr.write(`${failureSentence(failure)}\n`);
    return 1;
  }
  if (leftBehind.length) {
    process.stderr.write(
      `The demo worked but could not clean up (${leftBehind.join(', ')}); remove those by hand.\n`,
    );
    return 1;
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  say('Cleaned up: the demo database is dropped and the temporary home removed.');
  say(`Demo finished in ${seconds} s: ${captured} changes captured exactly once; capture works.`);
  return 0;
}

function failureSentence(e: unknown): string {
  const text = (isSyncError(e) ? e.message : `The demo failed: ${messageOf(e)}.`)
    .replace(/\s+/g, ' ')
    .trim();
  return text.replace(/\.\.$/, '.');
}

function messageOf(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/[.\s]+$/, '');
}

process.exitCode = await main();
