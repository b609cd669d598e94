import { SNAPSHOT_PATH, snapshotRoute } from '../engine/clone/snapshot.js';
import { queryRows, type Queryable } from '../engine/db/pool.js';
import { isSyncError } from '../engine/errors.js';
import type { SyncNode } from '../engine/node/node.js';
import { NodeService, type SyncSummary } from '../engine/node/service.js';
import { ParentClient } from '../engine/transport/client.js';
import { createPairingCode } from '../engine/transport/pairing.js';
import { startSyncServer } from '../engine/transport/server.js';
import { compare, readRows, type NodeRows } from './agreement.js';
import { Cleanup } from './cleanup.js';
import { Traffic } from './moved.js';
import {
  addPatients,
  CONCEPTS,
  conceptName,
  correctName,
  createOpenmrsShape,
  LOCATIONS,
  OPENMRS_TABLES,
  voidObs,
  type PatientName,
} from './openmrsShape.js';
import { findDemoServer } from './server.js';
import { cloneChild, createSiteDatabase, initRoot, type DemoSite } from './sites.js';

/*
 * `npm run demo` (issue 4, item 6): a hospital and two health centres, each with its own copy of
 * an OpenMRS-shaped database. The hospital is the parent and serves HTTP; each health centre is
 * cloned from it with a one-time pairing code. All three register patients and correct records at
 * once; the health centres sync with the hospital (only a child ever calls), and at the end every
 * synced table is compared on the three nodes by global identity.
 */

type Say = (line: string) => void;

interface Clinic {
  name: string;
  /** the column header in the table of what moved */
  short: string;
  /** where its patients are seen (a location of the shape's seed) */
  location: number;
  /** the new patient registered there during the demo */
  newPatient: PatientName;
  /** the first idgen sequence number of its OpenMRS IDs: each server has its own range */
  firstIdentifier: number | undefined;
}

const PARENT: Clinic = {
  name: 'Amani Hospital',
  short: 'Amani',
  location: LOCATIONS.outpatientClinic,
  newPatient: { givenName: 'Innocent', familyName: 'Niyonzima', gender: 'M' },
  firstIdentifier: undefined,
};
const CHILDREN: Clinic[] = [
  {
    name: 'Butaro Health Centre',
    short: 'Butaro',
    location: LOCATIONS.butaroHealthCentre,
    newPatient: { givenName: 'Claudine', familyName: 'Ingabire', gender: 'F' },
    firstIdentifier: 2 * 810_000, // OpenMRS IDs 20000…
  },
  {
    name: 'Rwinkwavu Health Centre',
    short: 'Rwinkwavu',
    location: LOCATIONS.rwinkwavuHealthCentre,
    newPatient: { givenName: 'Olivier', familyName: 'Mugisha', gender: 'M' },
    firstIdentifier: 3 * 810_000, // OpenMRS IDs 30000…
  },
];

/** Patients the hospital already has; the first one's family name was misspelt at registration. */
const EXISTING_PATIENTS = 20;
const MISSPELT: PatientName = { givenName: 'Aline', familyName: 'Mukamna', gender: 'F' };
const FEVERISH: PatientName = { givenName: 'Emmanuel', familyName: 'Habimana', gender: 'M' };
const CORRECTED_FAMILY_NAME = 'Mukamana';
const ADDED_MIDDLE_NAME = 'Marie';

interface Running {
  clinic: Clinic;
  site: DemoSite;
  node: SyncNode;
}

/** What the demo changed, to check afterwards that it arrived everywhere. */
interface Edits {
  newPatients: { uuid: string; name: string }[];
  /** the name both the hospital and a health centre edited, and what it must end as */
  nameUuid: string;
  mergedName: string;
  voidedObsUuid: string;
}

async function runDemo(say: Say, cleanup: Cleanup, made: Made): Promise<Verdict> {
  const server = await findDemoServer({ note: say });
  cleanup.add('stop the database server', () => server.stop());
  made.privateServer = server.folder !== null;
  say(`Database server: ${server.description}.`);
  say('');

  // The hospital: an OpenMRS database in use, then ClinicSync installed on it as the root.
  const hospital = await createSiteDatabase(server, PARENT.name, cleanup);
  const shape = await createOpenmrsShape(hospital.app);
  const existing = await addPatients(hospital.app, {
    count: EXISTING_PATIENTS,
    names: [MISSPELT, FEVERISH],
    seed: 2026,
  });
  const root = await initRoot(hospital);
  const http = await startSyncServer({
    node: root,
    host: '127.0.0.1',
    port: 0,
    extraRoutes: { [SNAPSHOT_PATH]: snapshotRoute() },
  });
  cleanup.add('stop the sync server', () => http.close());
  made.databases++;
  say(
    `${PARENT.name}, the parent: an OpenMRS-shaped database (${shape.tables} tables, ${existing.patients.length} patients) made the root node, serving ${http.url}.`,
  );
  const parent: Running = { clinic: PARENT, site: hospital, node: root };

  // Each health centre: a one-time code from the hospital, then a clone over HTTP.
  const children: Running[] = [];
  for (const clinic of CHILDREN) {
    const { code } = await createPairingCode(root.pool, 10);
    const { site, clone } = await cloneChild(server, clinic.name, http.url, code, cleanup);
    children.push({ clinic, site, node: clone.node });
    made.databases++;
    say(
      `${clinic.name}: cloned over HTTP with one-time pairing code ${code}: ${clone.tables} tables, ${count(clone.rows)} rows in ${seconds(clone.ms)} s.`,
    );
    if (clone.syncError !== null) say(`  Its first exchange failed: ${clone.syncError}`);
  }
  const all = [parent, ...children];

  say('');
  say('Edits at all three, before anyone syncs:');
  const edits = await editEverywhere(parent, children, existing.patients[0]!.personUuid, say);

  say('');
  say(
    'Syncs: each centre calls the hospital, then each again so what one centre did reaches the other:',
  );
  const traffic = new Traffic();
  const services = await Promise.all(
    children.map(async (c) => {
      const client = await ParentClient.forNode(c.node);
      cleanup.add(`close the HTTP client of ${c.clinic.name}`, () => client.close());
      return new NodeService(c.node, traffic.watch(client, c.node.nodeId, root.nodeId));
    }),
  );
  for (let round = 0; round < 2; round++) {
    for (const [i, service] of services.entries()) {
      const summary = await service.syncNow();
      say(`  ${children[i]!.clinic.name} → ${PARENT.name}: ${describeSync(summary)}`);
    }
  }

  say('');
  say('What moved: each change once, by the node where it was made:');
  const columns = new Map(all.map((r) => [r.node.nodeId, r.clinic.short]));
  for (const line of traffic.table(columns, OPENMRS_TABLES)) say(line);
  const d = traffic.deliveries(all.length);
  say(
    d.short === 0 && d.repeated === 0
      ? `  Each of the ${d.changes} changes reached the two other nodes exactly once (${d.deliveries} deliveries).`
      : `  ${d.changes} changes, ${d.deliveries} deliveries: ${d.short} reached fewer than the two other nodes, ${d.repeated} were delivered twice.`,
  );

  say('');
  return checkAgreement(all, edits, say);
}

/** Registrations everywhere; a name corrected at the hospital and at a centre; an obs voided. */
async function editEverywhere(
  parent: Running,
  children: Running[],
  misspeltUuid: string,
  say: Say,
): Promise<Edits> {
  const width = Math.max(...[parent, ...children].map((r) => r.clinic.name.length));
  const line = (r: Running, what: string) => say(`  ${r.clinic.name.padEnd(width)}  ${what}`);
  const newPatients: Edits['newPatients'] = [];

  for (const r of [parent, ...children]) {
    const added = await addPatients(r.site.app, {
      count: 1,
      names: [r.clinic.newPatient],
      locationId: r.clinic.location,
      firstIdentifier: r.clinic.firstIdentifier,
      obsPerEncounter: 5,
    });
    const p = added.patients[0]!;
    newPatients.push({ uuid: p.personUuid, name: `${p.givenName} ${p.familyName}` });
    line(
      r,
      `registers ${p.givenName} ${p.familyName} (${p.identifier}): a visit, a vitals encounter, 5 obs`,
    );
  }

  // The same name row, edited in two places: each side changes a different column.
  const [butaro, rwinkwavu] = children as [Running, Running];
  const hospitalName = await preferredName(parent.site.app, misspeltUuid);
  await correctName(parent.site.app, hospitalName.id, { familyName: CORRECTED_FAMILY_NAME });
  line(
    parent,
    `corrects ${MISSPELT.givenName} ${MISSPELT.familyName}'s family name to ${CORRECTED_FAMILY_NAME}`,
  );
  const centreName = await preferredName(butaro.site.app, misspeltUuid);
  await correctName(butaro.site.app, centreName.id, { middleName: ADDED_MIDDLE_NAME });
  line(
    butaro,
    `adds ${MISSPELT.givenName}'s middle name, ${ADDED_MIDDLE_NAME}: the same name row, another column`,
  );

  // A temperature entered in error, voided at the health centre where the patient is seen now.
  const [obs] = await queryRows(
    rwinkwavu.site.app,
    `SELECT o.obs_id, o.uuid, o.value_numeric FROM obs o JOIN person p ON p.person_id = o.person_id
      WHERE p.uuid = ? AND o.concept_id = ? AND o.voided = 0`,
    [await personUuidOf(rwinkwavu.site.app, FEVERISH), CONCEPTS.temperature],
  );
  if (!obs) throw new Error(`${FEVERISH.givenName} has no temperature to void`);
  await voidObs(rwinkwavu.site.app, Number(obs.obs_id), 'Entered in error');
  line(
    rwinkwavu,
    `voids ${FEVERISH.givenName} ${FEVERISH.familyName}'s ${conceptName(CONCEPTS.temperature)} ${String(obs.value_numeric)}, entered in error`,
  );

  return {
    newPatients,
    nameUuid: hospitalName.uuid,
    mergedName: `${MISSPELT.givenName} ${ADDED_MIDDLE_NAME} ${CORRECTED_FAMILY_NAME}`,
    voidedObsUuid: String(obs.uuid),
  };
}

async function preferredName(db: Queryable, personUuid: string) {
  const [row] = await queryRows(
    db,
    `SELECT pn.person_name_id, pn.uuid FROM person_name pn JOIN person p ON p.person_id = pn.person_id
      WHERE p.uuid = ? AND pn.preferred = 1`,
    [personUuid],
  );
  if (!row) throw new Error(`no name for person ${personUuid}`);
  return { id: Number(row.person_name_id), uuid: String(row.uuid) };
}

async function personUuidOf(db: Queryable, name: PatientName): Promise<string> {
  const [row] = await queryRows(
    db,
    `SELECT p.uuid FROM person p JOIN person_name pn ON pn.person_id = p.person_id
      WHERE pn.given_name = ? AND pn.family_name = ? ORDER BY p.person_id LIMIT 1`,
    [name.givenName, name.familyName],
  );
  if (!row) throw new Error(`no patient named ${name.givenName} ${name.familyName}`);
  return String(row.uuid);
}

/**
 * The checks: the demo's own edits are on every node (agreement alone would also hold if every
 * edit had been dropped everywhere), then every synced table is identical on the three nodes by
 * global identity. Returns the verdict, printed last.
 */
async function checkAgreement(all: Running[], edits: Edits, say: Say): Promise<Verdict> {
  const missing: string[] = [];
  const names: string[] = [];
  const notVoided: string[] = [];
  const pending: string[] = [];
  for (const r of all) {
    const db = r.site.app;
    const where = r.clinic.name;
    const uuids = edits.newPatients.map((p) => p.uuid);
    const found = await queryRows(
      db,
      `SELECT p.uuid FROM patient pa JOIN person p ON p.person_id = pa.patient_id
        WHERE p.uuid IN (${uuids.map(() => '?').join(', ')})`,
      uuids,
    );
    const here = new Set(found.map((f) => String(f.uuid)));
    for (const p of edits.newPatients) if (!here.has(p.uuid)) missing.push(`${p.name} at ${where}`);
    const [name] = await queryRows(
      db,
      'SELECT given_name, middle_name, family_name FROM person_name WHERE uuid = ?',
      [edits.nameUuid],
    );
    const full = [name?.given_name, name?.middle_name, name?.family_name].filter(Boolean).join(' ');
    if (full !== edits.mergedName) names.push(`"${full}" at ${where}`);
    const [obs] = await queryRows(db, 'SELECT voided FROM obs WHERE uuid = ?', [
      edits.voidedObsUuid,
    ]);
    if (Number(obs?.voided) !== 1) notVoided.push(where);
    const status = await r.node.status();
    if (status.pendingOut > 0 || status.parked > 0) {
      pending.push(`${where} (${status.pendingOut} to send, ${status.parked} parked)`);
    }
  }
  const newNames = edits.newPatients.map((p) => p.name);
  const checks: [ok: boolean, yes: string, no: string][] = [
    [
      missing.length === 0,
      `the ${newNames.length} new patients are there, by uuid (${list(newNames)})`,
      `NOT SO: patients missing: ${missing.join(', ')}`,
    ],
    [
      names.length === 0,
      `the name reads ${edits.mergedName}: both edits kept, column by column`,
      `NOT SO: the name should read ${edits.mergedName}, but reads ${names.join(', ')}`,
    ],
    [
      notVoided.length === 0,
      'the temperature entered in error is voided',
      `NOT SO: the temperature is not voided at ${list(notVoided)}`,
    ],
    [
      pending.length === 0,
      'nothing is left to send and nothing is parked',
      `NOT SO: changes are still waiting at ${list(pending)}`,
    ],
  ];
  say('Checks on each of the three nodes:');
  for (const [ok, yes, no] of checks) say(`  ${ok ? yes : no}`);

  const rows = new Map<string, NodeRows>();
  for (const r of all) rows.set(r.clinic.name, await readRows(r.node));
  const agreement = compare(rows);
  if (agreement.differences.length === 0) {
    return {
      ok: checks.every(([ok]) => ok),
      lines: [
        `All three nodes agree: ${agreement.tables} tables, ${count(agreement.rows)} rows, identical by global identity.`,
      ],
    };
  }
  return {
    ok: false,
    lines: ['The three nodes do not agree:', ...agreement.differences.map((d) => `  ${d}`)],
  };
}

interface Verdict {
  ok: boolean;
  /** printed last, after the clean-up */
  lines: string[];
}

/** "a, b and c" */
function list(items: string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
}

/** "sent 12 changes, received 0, 2.1 KB up, 0.4 KB down, 120 ms" */
function describeSync(s: SyncSummary): string {
  const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
  return `sent ${s.sent} change${s.sent === 1 ? '' : 's'}, received ${s.received}, ${kb(s.bytesUp)} up, ${kb(s.bytesDown)} down, ${count(s.ms)} ms`;
}

const count = (n: number) => n.toLocaleString('en-US');
const seconds = (ms: number) => (ms / 1000).toFixed(1);

/** What the demo made, for the closing line. */
interface Made {
  databases: number;
  privateServer: boolean;
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
  say(
    'ClinicSync demo: a hospital and two health centres edit their own OpenMRS databases, kept in sync over HTTP.',
  );
  const made: Made = { databases: 0, privateServer: false };
  let verdict: Verdict | null = null;
  let failure: unknown = null;
  try {
    verdict = await runDemo(say, cleanup, made);
  } catch (e) {
    failure = e;
  }
  const leftBehind = await cleanup.run();
  cleanup.releaseSignals();
  if (cleanup.interruptedBy) return 130;
  if (failure !== null || verdict === null) {
    process.stderr.write(`${failureSentence(failure)}\n`);
    return 1;
  }
  if (leftBehind.length) {
    process.stderr.write(
      `The demo could not clean up (${leftBehind.join(', ')}); remove those by hand.\n`,
    );
  } else {
    const what = [
      `dropped the ${made.databases} databases`,
      'removed their homes',
      'stopped the sync server',
      ...(made.privateServer ? ['the private database server'] : []),
    ];
    say('');
    say(`Cleaned up: ${list(what)}; ${seconds(Date.now() - started)} s in all.`);
  }
  for (const line of verdict.lines) say(line);
  return verdict.ok && leftBehind.length === 0 ? 0 : 1;
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
