import type { Queryable } from '../db/pool.js';
import { queryRows } from '../db/pool.js';
import { hasTables, type KnownTables } from '../db/schema.js';

/**
 * Which OpenMRS a database belongs to, read from the database itself (issue 12, point 3), so two
 * nodes whose tables differ can say why in words a data manager acts on.
 *
 * OpenMRS does not store its own release number in the database. What it does store:
 * - `liquibasechangelog`: every schema change set it ran, by file. Since OpenMRS 2.4 the core's
 *   files carry the version they belong to (`liquibase-update-to-latest-2.5.x.xml`,
 *   `liquibase-schema-only-2.4.x.xml`, …), so the highest such version is the release line of
 *   the schema ("2.5.x"). A database made by an older OpenMRS only has the unversioned files.
 * - `global_property`: each module's `<module>.started` and, for modules with their own tables,
 *   `<module>.database_version` (idgen, providermanagement, …). Those versions are what shape the
 *   module's tables, so they are what a node reports.
 */

export interface Software {
  /** OpenMRS's release line as its schema shows it ("2.5.x"), or null where it cannot tell */
  openmrs: string | null;
  /** module id -> the version of its tables (`<module>.database_version`) */
  modules: Record<string, string>;
}

const NO_SOFTWARE: Software = { openmrs: null, modules: {} };
const VERSIONED_FILE = /liquibase-[a-z-]+-([0-9]{1,3})\.([0-9]{1,3})\.x\.xml$/;
const MODULE_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const VERSION = /^[A-Za-z0-9_.+-]{1,32}$/;
/** Modules reported at most: OpenMRS distributions run 40 to 80. */
const MAX_MODULES = 200;

/** What this database says of its OpenMRS; empty for a database that is not OpenMRS. */
export async function readSoftware(db: Queryable, known?: KnownTables): Promise<Software> {
  if (!(await hasTables(db, ['global_property'], known))) return NO_SOFTWARE;
  let openmrs: string | null = null;
  if (await hasTables(db, ['liquibasechangelog'], known)) {
    const files = await queryRows(
      db,
      "SELECT DISTINCT FILENAME AS f FROM liquibasechangelog WHERE FILENAME LIKE '%.x.xml'",
    );
    let best: [number, number] | null = null;
    for (const r of files) {
      const m = VERSIONED_FILE.exec(String(r.f));
      if (!m) continue;
      const v: [number, number] = [Number(m[1]), Number(m[2])];
      if (!best || v[0] > best[0] || (v[0] === best[0] && v[1] > best[1])) best = v;
    }
    if (best) openmrs = `${best[0]}.${best[1]}.x`;
  }
  const modules: Record<string, string> = {};
  const rows = await queryRows(
    db,
    "SELECT property AS p, property_value AS v FROM global_property WHERE property LIKE '%.database\\_version' ORDER BY property",
  );
  for (const r of rows) {
    const id = String(r.p).slice(0, -'.database_version'.length);
    const v = r.v == null ? '' : String(r.v).trim();
    if (MODULE_ID.test(id) && VERSION.test(v) && Object.keys(modules).length < MAX_MODULES)
      modules[id] = v;
  }
  return { openmrs, modules };
}

/**
 * The envelope's `sw` attribute (docs/protocol.md): space-separated `name=version` pairs, OpenMRS
 * first as `openmrs=2.5.x`, then each module with tables of its own.
 */
export function encodeSoftware(s: Software): string {
  const parts = s.openmrs ? [`openmrs=${s.openmrs}`] : [];
  for (const [id, v] of Object.entries(s.modules)) parts.push(`${id}=${v}`);
  return parts.join(' ');
}

/** Reads an `sw` attribute; a sentence's end saying what is wrong when it is not one. */
export function decodeSoftware(text: string): Software | string {
  const out: Software = { openmrs: null, modules: {} };
  const parts = text.split(' ').filter((p) => p !== '');
  if (parts.length > MAX_MODULES + 1) return `names more than ${MAX_MODULES} modules`;
  for (const p of parts) {
    const eq = p.indexOf('=');
    const id = p.slice(0, eq);
    const v = p.slice(eq + 1);
    if (eq < 1 || !MODULE_ID.test(id) || !VERSION.test(v))
      return 'holds an entry that is not name=version';
    if (id === 'openmrs') out.openmrs = v;
    else out.modules[id] = v;
  }
  return out;
}

/** -1, 0 or 1 comparing dotted versions part by part, numbers as numbers ("2.10.x" > "2.9.x"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.');
  const pb = b.split('.');
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    if (x === y) continue;
    const nx = /^[0-9]+$/.test(x) ? Number(x) : NaN;
    const ny = /^[0-9]+$/.test(y) ? Number(y) : NaN;
    if (!Number.isNaN(nx) && !Number.isNaN(ny)) return nx < ny ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

/** How the other node is named in sentences shown on this one. */
export interface Other {
  relation: 'parent' | 'child';
  name: string;
}

/**
 * Why a table waits, naming both versions where they explain it: "The main server (district)
 * runs OpenMRS 2.3.x; this clinic runs 2.2.x. Upgrade this clinic, then sync." Where the versions
 * are the same or unknown, the modules whose versions differ; else the plain fact.
 */
export function describeShapeGap(
  tables: string[],
  here: Software,
  there: Software | null,
  other: Other,
): string {
  const them = other.relation === 'parent' ? `The main server (${other.name})` : `${other.name}`;
  const me = other.relation === 'parent' ? 'this clinic' : 'this server';
  const themShort = other.relation === 'parent' ? 'the main server' : other.name;
  const which =
    tables.length === 1 ? `the ${tables[0]} table` : `the tables ${tables.slice(0, 5).join(', ')}`;
  const waits = `Until then ${which} ${tables.length === 1 ? 'waits' : 'wait'} on both sides; everything else keeps flowing and nothing is lost.`;
  const gap = versionGap(here, there);
  if (gap) {
    const behindHere = gap.cmp < 0;
    const advice = behindHere ? `Upgrade ${me}, then sync.` : `Upgrade ${themShort}, then sync.`;
    return `${them} runs ${gap.what} ${gap.there}; ${me} runs ${gap.here}. ${advice} ${waits}`;
  }
  return `${which[0]!.toUpperCase()}${which.slice(1)} ${tables.length === 1 ? 'has' : 'have'} different columns here than at ${themShort}${there?.openmrs ? `, although both run OpenMRS ${there.openmrs}` : ''}; bring both to the same OpenMRS and module versions, then sync. ${waits}`;
}

function versionGap(
  here: Software,
  there: Software | null,
): { what: string; here: string; there: string; cmp: number } | null {
  if (!there) return null;
  if (here.openmrs && there.openmrs && here.openmrs !== there.openmrs)
    return {
      what: 'OpenMRS',
      here: here.openmrs,
      there: there.openmrs,
      cmp: compareVersions(here.openmrs, there.openmrs),
    };
  for (const [id, v] of Object.entries(there.modules)) {
    const mine = here.modules[id];
    if (mine !== undefined && mine !== v)
      return {
        what: `the ${id} module`,
        here: mine,
        there: v,
        cmp: compareVersions(mine, v),
      };
  }
  return null;
}
