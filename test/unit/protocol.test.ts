import { createGzip, deflateSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import { XMLValidator } from 'fast-xml-parser';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { StoredValue } from '../../src/engine/capture/values.js';
import { SyncError } from '../../src/engine/errors.js';
import type { Basis, Envelope, WireChange } from '../../src/engine/protocol/types.js';
import { DICTIONARY_V2 } from '../../src/engine/protocol/dictionary.js';
import {
  decodeEnvelope,
  encodeEnvelope,
  PROTOCOL_VERSION,
  SUPPORTED_VERSIONS,
} from '../../src/engine/protocol/xml.js';

// ---------------------------------------------------------------------------------------------
// Fixtures

const CHILD = 'a1b2c3d4e5f60718';
const PARENT = 'ffee00112233aabb';
const OTHER = '0123456789abcdef';
const MIB = 1024 * 1024;

/** Deterministic pseudo-random numbers (mulberry32), so fixtures are the same on every run. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function uuids(seed: number): () => string {
  const r = prng(seed);
  const hex = (n: number): string =>
    Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join('');
  return () => `${hex(8)}-${hex(4)}-4${hex(3)}-${'89ab'[Math.floor(r() * 4)]}${hex(3)}-${hex(12)}`;
}

/** CIEL-style concept uuids, as an OpenMRS dictionary has them. */
const concept = (id: string): string => id + 'A'.repeat(36 - id.length);

/** Builds changes with dense sequences and clocks that move on by a few milliseconds. */
class Log {
  private seq = new Map<string, bigint>();
  private ms = 1_764_151_875_123;
  private counter = 0n;
  readonly changes: WireChange[] = [];

  constructor(private readonly r = prng(1)) {}

  hlc(): string {
    const step = Math.floor(this.r() * 3);
    if (step === 0) this.counter++;
    else {
      this.ms += step;
      this.counter = 0n;
    }
    return ((BigInt(this.ms) << 16n) + this.counter).toString();
  }

  add(origin: string, c: Omit<WireChange, 'origin' | 'seq' | 'hlc'>): this {
    const seq = (this.seq.get(origin) ?? 1000n) + 1n;
    this.seq.set(origin, seq);
    this.changes.push({ origin, seq: seq.toString(), hlc: this.hlc(), ...c });
    return this;
  }

  /** Sequence numbers used without sending a change (as a filter or an earlier batch would). */
  gap(origin: string, n: number): this {
    this.seq.set(origin, (this.seq.get(origin) ?? 1000n) + BigInt(n));
    return this;
  }
}

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('base64');

/** A patient registered at a clinic, with an encounter, then edits, a delete and filtered changes. */
function realistic(): Envelope {
  const uuid = uuids(42);
  const log = new Log();
  const person = uuid();
  const creator = uuid();
  const location = uuid();
  const visit = uuid();
  const encounter = uuid();
  const name = uuid();
  const obs = [uuid(), uuid(), uuid(), uuid(), uuid()];
  const stamp = '2025-11-26 10:11:15';
  log
    .add(CHILD, {
      op: 'I',
      table: 'person',
      ident: person,
      values: {
        uuid: person,
        gender: 'F',
        birthdate: '1990-02-03',
        birthdate_estimated: '0',
        dead: '0',
        creator,
        date_created: stamp,
        voided: '0',
      },
    })
    .add(CHILD, {
      op: 'I',
      table: 'person_name',
      ident: name,
      values: {
        uuid: name,
        person_id: person,
        preferred: '1',
        given_name: 'Élise',
        middle_name: null,
        family_name: 'Uwimana',
        creator,
        date_created: stamp,
        voided: '0',
      },
    })
    .add(CHILD, {
      op: 'I',
      table: 'patient',
      ident: person,
      values: { patient_id: person, creator, date_created: stamp, voided: '0' },
    })
    .add(CHILD, {
      op: 'I',
      table: 'visit',
      ident: visit,
      values: {
        uuid: visit,
        patient_id: person,
        visit_type_id: uuid(),
        date_started: stamp,
        date_stopped: null,
        location_id: location,
        creator,
        date_created: stamp,
        voided: '0',
      },
    })
    .add(CHILD, {
      op: 'I',
      table: 'encounter',
      ident: encounter,
      values: {
        uuid: encounter,
        encounter_type: uuid(),
        patient_id: person,
        location_id: location,
        visit_id: visit,
        encounter_datetime: stamp,
        creator,
        date_created: stamp,
        voided: '0',
      },
    });
  const obsValues: [string, StoredValue, StoredValue, StoredValue][] = [
    ['5089', null, '61.5', null], // weight
    ['5088', null, '38.2', null], // temperature
    ['1284', concept('5158'), null, null], // diagnosis, coded
    ['160632', null, null, 'Toux sèche depuis 3 jours; inkorora → 🤒 "mild" <watch>'],
    ['1342', null, '', '\\N'], // an empty string and the text \N are not NULL
  ];
  obsValues.forEach(([c, coded, numeric, text], i) =>
    log.add(CHILD, {
      op: 'I',
      table: 'obs',
      ident: obs[i]!,
      values: {
        uuid: obs[i]!,
        person_id: person,
        concept_id: concept(c),
        encounter_id: encounter,
        obs_datetime: stamp,
        location_id: location,
        value_coded: coded,
        value_numeric: numeric,
        value_text: text,
        creator,
        date_created: stamp,
        voided: '0',
      },
    }),
  );
  log
    .gap(CHILD, 3)
    .add(CHILD, {
      op: 'U',
      table: 'person_name',
      ident: name,
      values: { family_name: 'Uwimana-Mukamana', middle_name: 'NULL' },
    })
    .add(CHILD, {
      op: 'U',
      table: 'obs',
      ident: obs[1]!,
      values: {
        voided: '1',
        voided_by: creator,
        date_voided: '2025-11-26 11:02:40',
        void_reason: 'Saisie\terronée\nligne 2\r\\fin',
      },
    })
    .add(CHILD, { op: 'D', table: 'obs', ident: obs[4]! })
    .add(CHILD, {
      op: 'U',
      table: 'patient_identifier',
      ident: 'KGH-000123-4|' + person,
      oldIdent: 'KGH-000123-3|' + person,
      values: { identifier: 'KGH-000123-4' },
    })
    .add(CHILD, { op: 'S', table: '', ident: '' })
    .add(CHILD, { op: 'S', table: '', ident: '' })
    .add(CHILD, { op: 'S', table: '', ident: '' })
    .add(OTHER, { op: 'S', table: '', ident: '' })
    .add(OTHER, {
      op: 'U',
      table: 'location',
      ident: location,
      values: { name: 'Centre de Santé de Rwinkwavu', description: null },
    })
    .add(CHILD, {
      op: 'I',
      table: 'concept_complex_blob',
      ident: 'blob-1',
      values: { id: 'blob-1', data: { b: ALL_BYTES }, empty: { b: '' }, note: '' },
    });
  return {
    version: 1,
    from: { node: CHILD, incarnation: '0a1b2c3d', name: 'Rwinkwavu HC' },
    to: PARENT,
    time: '1764151999000',
    hlc: '115616287260000256',
    vv: { [CHILD]: '1019', [PARENT]: '88', [OTHER]: '4' },
    tables: [
      'person',
      'person_name',
      'patient',
      'patient_identifier',
      'visit',
      'encounter',
      'obs',
      'location',
      'concept_complex_blob',
      'users',
    ].map((t) => ({ name: t, fingerprint: `fp_${t}_Qm9i` })),
    changes: log.changes,
    more: true,
  };
}

/** `n` obs inserts as a clinic writes them during encounters: 12 columns, uuids everywhere. */
function obsInserts(n: number): Envelope {
  const uuid = uuids(7);
  const r = prng(3);
  const log = new Log(r);
  const concepts = ['5089', '5090', '5085', '5086', '5087', '5088', '5092', '5242', '1342'].map(
    concept,
  );
  const location = uuid();
  const creator = uuid();
  let person = '';
  let encounter = '';
  for (let i = 0; i < n; i++) {
    if (i % 30 === 0) {
      person = uuid();
      encounter = uuid();
    }
    const id = uuid();
    const coded = r() < 0.3;
    log.add(CHILD, {
      op: 'I',
      table: 'obs',
      ident: id,
      values: {
        uuid: id,
        person_id: person,
        concept_id: concepts[i % concepts.length]!,
        encounter_id: encounter,
        obs_datetime: '2025-11-26 10:11:15',
        location_id: location,
        value_coded: coded ? concepts[Math.floor(r() * concepts.length)]! : null,
        value_numeric: coded ? null : (Math.round(r() * 2000) / 10).toFixed(1),
        value_text: null,
        creator,
        date_created: '2025-11-26 10:14:02',
        voided: '0',
      },
    });
  }
  return {
    version: 1,
    from: { node: CHILD, incarnation: '0a1b2c3d' },
    to: PARENT,
    time: '1764152300312',
    hlc: log.hlc(),
    vv: { [CHILD]: String(1000 + n), [PARENT]: '88' },
    tables: [{ name: 'obs', fingerprint: 'Qm9ic2VydmF0aW9uIGNvbHVtbnMgdjE' }],
    changes: log.changes,
    more: false,
  };
}

function refusal(fn: () => unknown): SyncError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SyncError) return e;
    throw e;
  }
  throw new Error('expected a SyncError');
}

/** Decoding `body` is refused with a protocol error whose sentence matches `sentence`. */
function expectRefused(body: Buffer | string, sentence: RegExp | string, opts = {}): SyncError {
  const e = refusal(() => decodeEnvelope(Buffer.from(body), opts));
  expect(e.kind).toBe('protocol');
  if (typeof sentence === 'string') expect(e.message).toBe(sentence);
  else expect(e.message).toMatch(sentence);
  // One sentence, never a dump of the input.
  expect(e.message.length).toBeLessThan(220);
  return e;
}

const xmlOf = (env: Envelope): string => encodeEnvelope(env, { gzip: false }).toString('utf8');

/** A minimal valid document around `body` (which goes inside <cs>). */
function doc(body: string, root = `v="1" from="${CHILD}" inc="0a1b2c3d" to="${PARENT}"`): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<cs ${root} t="1" h="1000000" more="0">\n<o>${CHILD}</o>\n${body}</cs>\n`;
}

const PERSON_T = '<t n="person" f="fp" k="uuid" c="uuid gender birthdate"/>\n';

// ---------------------------------------------------------------------------------------------
// Round trips

describe('protocol v1 round trip', () => {
  it('exports its version', () => {
    expect(PROTOCOL_VERSION).toBe(2);
    expect(SUPPORTED_VERSIONS).toEqual([2, 1]);
  });

  it.each([false, true])('carries a realistic envelope exactly (gzip %s)', (gzip) => {
    const env = realistic();
    const body = encodeEnvelope(env, { gzip });
    expect(body[0] === 0x1f && body[1] === 0x8b).toBe(gzip);
    const back = decodeEnvelope(body);
    expect(back).toStrictEqual(env);
    // Order is kept: per origin in sequence order, and across tables as encoded.
    expect(back.changes.map((c) => `${c.origin}:${c.seq}`)).toEqual(
      env.changes.map((c) => `${c.origin}:${c.seq}`),
    );
    // Canonical: encoding what was decoded gives the same bytes.
    expect(encodeEnvelope(back, { gzip })).toEqual(body);
  });

  it('writes well-formed XML that carries no raw control characters', () => {
    const xml = xmlOf(realistic());
    expect(XMLValidator.validate(xml)).toBe(true);
    // eslint-disable-next-line no-control-regex
    expect(xml).not.toMatch(/[\x00-\x08\x0B\x0C\x0E-\x1F\r\uFFFE\uFFFF]/);
    // Column lists once per table, rows without repeated names.
    expect(xml.match(/<t n="obs"/g)).toHaveLength(1);
    expect(xml).toContain('<x h="');
  });

  it('tells NULL, the empty string, the text \\N and the text NULL apart', () => {
    const back = decodeEnvelope(encodeEnvelope(realistic(), { gzip: false }));
    const obs5 = back.changes.find((c) => c.table === 'obs' && c.values?.value_text === '\\N');
    expect(obs5?.values).toMatchObject({ value_numeric: '', value_text: '\\N', value_coded: null });
    const rename = back.changes.find((c) => c.table === 'person_name' && c.op === 'U');
    expect(rename?.values).toStrictEqual({
      family_name: 'Uwimana-Mukamana',
      middle_name: 'NULL',
    });
  });

  it('carries only the changed columns of an update', () => {
    const xml = xmlOf(realistic());
    const update = xml.split('\n').find((l) => l.startsWith('<u') && l.includes('Saisie'));
    // The four void columns, consecutive in the column list, written as a range.
    expect(update).toMatch(/ c="\d+-\d+">1\t/);
    expect(update).not.toContain('Toux');
  });

  it('carries every byte value and every awkward character', () => {
    const awkward = [
      'tab\there',
      'line\nbreak',
      'cr\rlf\r\n',
      'back\\slash\\',
      '\\N',
      '\\b',
      '\\t',
      'NULL',
      '',
      ' spaced ',
      '\t',
      '<script>&amp;"\'</script>',
      ']]>',
      'Kinyarwanda: Muraho, amakuru?',
      'français: àâçéèêëîïôûùüÿœæ',
      '𝄞 music, 🏥 clinic, 👩🏾‍⚕️ nurse',
      '\u0000\u0001\u0008\u000b\u000c\u000e\u001f\u007f\u0085\u2028',
      '\uFFFE\uFFFF\uFFFD',
      '\uD800 lone high, lone low \uDC00, reversed \uDC00\uD800',
      '\u{10FFFF}\u{1F600}',
    ];
    const values: Record<string, StoredValue> = Object.fromEntries(
      awkward.map((v, i) => [`c${i}`, v]),
    );
    values.bytes = { b: ALL_BYTES };
    values.nothing = null;
    values.__proto__x = 'x';
    const env: Envelope = {
      ...realistic(),
      tables: [{ name: 'weird', fingerprint: 'fp' }],
      changes: [
        { origin: CHILD, seq: '1', hlc: '5', op: 'I', table: 'weird', ident: 'tab\tid', values },
        {
          origin: CHILD,
          seq: '2',
          hlc: '4',
          op: 'U',
          table: 'weird',
          ident: '𝄞 <&> "\\N"\uD800',
          oldIdent: '',
          values: { c3: '\\', bytes: { b: '' } },
        },
      ],
    };
    for (const gzip of [false, true]) {
      expect(decodeEnvelope(encodeEnvelope(env, { gzip }))).toStrictEqual(env);
    }
    const bytes = decodeEnvelope(encodeEnvelope(env, { gzip: false })).changes[0]!.values!.bytes;
    expect(Buffer.from((bytes as { b: string }).b, 'base64')).toEqual(
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    );
  });

  it('keeps a column named __proto__ as a column', () => {
    const env: Envelope = {
      ...realistic(),
      tables: [{ name: 't1', fingerprint: 'fp' }],
      changes: [
        {
          origin: CHILD,
          seq: '1',
          hlc: '1',
          op: 'I',
          table: 't1',
          ident: 'row',
          values: Object.fromEntries([
            ['__proto__', 'polluted?'],
            ['constructor', null],
          ]) as Record<string, StoredValue>,
        },
      ],
    };
    const back = decodeEnvelope(encodeEnvelope(env, { gzip: false }));
    const values = back.changes[0]!.values!;
    expect(Object.hasOwn(values, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(values)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('round-trips arbitrary envelopes (property)', () => {
    const nodes = [CHILD, PARENT, OTHER, 'fedcba9876543210'];
    const U64 = (1n << 64n) - 1n;
    const char = fc.oneof(
      { weight: 6, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
      {
        weight: 1,
        arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
      },
      {
        weight: 3,
        arbitrary: fc.constantFrom(
          '\\',
          '\t',
          '\n',
          '\r',
          '<',
          '&',
          '>',
          '"',
          "'",
          '\\N',
          '\\b',
          ']]>',
          '\u0000',
          '\uFFFE',
          ' ',
        ),
      },
    );
    const text = fc.string({ unit: char, maxLength: 12 });
    const value: fc.Arbitrary<StoredValue> = fc.oneof(
      fc.constant(null),
      text,
      fc.constantFrom('', 'NULL', '\\N'),
      fc.uint8Array({ maxLength: 20 }).map((a) => ({ b: Buffer.from(a).toString('base64') })),
    );
    const colName = fc.constantFrom('uuid', 'a', 'b_c', 'D$', 'x1', '__proto__', 'name');
    const values = fc.dictionary(colName, value, { maxKeys: 6, noNullPrototype: true });
    const change = fc.record({
      node: fc.constantFrom(...nodes),
      gap: fc.bigInt({ min: 1n, max: 5n }),
      hlc: fc.oneof(fc.bigInt({ min: 0n, max: U64 }), fc.bigInt({ min: 0n, max: 1000n })),
      op: fc.constantFrom('I', 'U', 'D', 'S', 'S'),
      table: fc.constantFrom('person', 'obs', 'T$1'),
      ident: fc.string({ unit: char, minLength: 1, maxLength: 10 }),
      oldIdent: fc.option(text, { nil: undefined }),
      values,
      keyed: fc.boolean(),
      // what an update was made upon: clocks of any node, any distance from the update's own
      base: fc.option(
        fc.record({ node: fc.constantFrom(...nodes), hlc: fc.bigInt({ min: 0n, max: U64 }) }),
        { nil: undefined },
      ),
      prior: fc.array(
        fc.record({ node: fc.constantFrom(...nodes), hlc: fc.bigInt({ min: 0n, max: U64 }) }),
        { maxLength: 3 },
      ),
    });
    const envelope = fc
      .record({
        start: fc.bigInt({ min: 0n, max: U64 - 1000n }),
        changes: fc.array(change, { maxLength: 25 }),
        vv: fc.dictionary(fc.constantFrom(...nodes), fc.bigInt({ min: 0n, max: U64 }).map(String), {
          noNullPrototype: true,
        }),
        hlc: fc.bigInt({ min: 0n, max: U64 }),
        name: fc.option(text, { nil: undefined }),
        more: fc.boolean(),
        gzip: fc.boolean(),
        version: fc.constantFrom(1, 2),
      })
      .map(({ start, changes, vv, hlc, name, more, gzip, version }) => {
        const seqs = new Map<string, bigint>();
        const wire: WireChange[] = changes.map((c) => {
          const seq = (seqs.get(c.node) ?? start) + c.gap;
          seqs.set(c.node, seq);
          const base = { origin: c.node, seq: seq.toString(), hlc: c.hlc.toString() };
          if (c.op === 'S') return { ...base, op: 'S', table: '', ident: '' };
          // Half the rows carry their identity as the uuid column, as OpenMRS rows do.
          const vals = c.keyed ? { ...c.values, uuid: c.ident } : c.values;
          const w: WireChange = { ...base, op: c.op, table: c.table, ident: c.ident };
          if (c.oldIdent !== undefined) w.oldIdent = c.oldIdent;
          if (c.op !== 'D' || Object.keys(vals).length) w.values = vals;
          if (c.op === 'U') {
            const basis: Basis = {};
            if (c.base) basis.base = `${c.base.hlc}:${c.base.node}`;
            const cols = Object.keys(vals).slice(0, c.prior.length);
            if (cols.length)
              basis.prior = Object.fromEntries(
                cols.map((col, i) => [col, `${c.prior[i]!.hlc}:${c.prior[i]!.node}`]),
              );
            if (basis.base !== undefined || basis.prior !== undefined) w.basis = basis;
          }
          return w;
        });
        const env: Envelope = {
          version,
          from:
            name === undefined
              ? { node: CHILD, incarnation: 'deadbeef' }
              : { node: CHILD, incarnation: 'deadbeef', name },
          to: PARENT,
          time: '1764151875123',
          hlc: hlc.toString(),
          vv,
          tables: ['person', 'obs', 'T$1', 'unused'].map((n) => ({
            name: n,
            fingerprint: `fp_${n.length}`,
          })),
          changes: wire,
          more,
        };
        return { env, gzip };
      });
    fc.assert(
      fc.property(envelope, ({ env, gzip }) => {
        const body = encodeEnvelope(env, { gzip });
        const back = decodeEnvelope(body);
        expect(back).toStrictEqual(env);
        expect(encodeEnvelope(back, { gzip })).toEqual(body);
      }),
      { seed: 20251126, numRuns: 300 },
    );
  });

  it('reads what another XML writer might send: comments, whitespace, single quotes, references', () => {
    const xml = `<?xml version='1.0'?>
<!-- written by hand -->
<cs v='1' from="${CHILD}" inc="0a1b2c3d" to="${PARENT}" t="1" h="1000000" more="1">
  <o> ${CHILD}
  </o>
  <t n="person" f="fp" k="uuid" c="uuid  gender"/>
  <r t="person">
    <i s="5" h="-&#x31;">p1&#9;F&amp;&#x1F600;</i>
    <!-- a comment between rows -->
    <u h="1" k="p1" c="1">M</u>
  </r>
</cs>`;
    const env = decodeEnvelope(Buffer.from(xml));
    expect(env.more).toBe(true);
    expect(env.changes).toStrictEqual([
      {
        origin: CHILD,
        seq: '5',
        hlc: '999999',
        op: 'I',
        table: 'person',
        ident: 'p1',
        values: { uuid: 'p1', gender: 'F&😀' },
      },
      {
        origin: CHILD,
        seq: '6',
        hlc: '1000000',
        op: 'U',
        table: 'person',
        ident: 'p1',
        values: { gender: 'M' },
      },
    ]);
  });

  it('writes an insert or update without values as one with no columns', () => {
    const env: Envelope = {
      ...realistic(),
      changes: [
        { origin: CHILD, seq: '1', hlc: '9', op: 'U', table: 'person', ident: 'p' },
        { origin: CHILD, seq: '2', hlc: '9', op: 'D', table: 'person', ident: 'p', values: {} },
      ],
    };
    const back = decodeEnvelope(encodeEnvelope(env, { gzip: false }));
    expect(back.changes[0]!.values).toStrictEqual({});
    expect(back.changes[1]!.values).toBeUndefined();
  });

  it('accepts a byte-order mark', () => {
    const body = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      encodeEnvelope(realistic(), { gzip: false }),
    ]);
    expect(decodeEnvelope(body)).toStrictEqual(realistic());
  });

  it('refuses, as a usage error, an envelope the format cannot carry', () => {
    const env = realistic();
    const cases: Envelope[] = [
      { ...env, tables: env.tables.filter((t) => t.name !== 'obs') },
      { ...env, to: 'not-a-node' },
      { ...env, version: 3 },
      { ...env, changes: [...env.changes].reverse() },
      { ...env, tables: [...env.tables, { name: 'person`; DROP TABLE x', fingerprint: 'f' }] },
    ];
    for (const bad of cases)
      expect(refusal(() => encodeEnvelope(bad, { gzip: false })).kind).toBe('usage');
  });
});

// ---------------------------------------------------------------------------------------------
// Hostile input

describe("an update's basis", () => {
  const update = (basis: Basis): Envelope => ({
    version: 1,
    from: { node: CHILD, incarnation: 'deadbeef' },
    to: PARENT,
    time: '1764151875123',
    hlc: '1000000',
    vv: {},
    tables: [{ name: 'person', fingerprint: 'fp' }],
    changes: [
      {
        origin: CHILD,
        seq: '7',
        hlc: '999000',
        op: 'U',
        table: 'person',
        ident: 'p-1',
        values: { gender: 'F', birthdate: '2001-01-01' },
        basis,
      },
    ],
    more: false,
  });

  it('is written as small numbers relative to the update, one prior clock when all agree', () => {
    const env = update({
      base: `998000:${CHILD}`,
      prior: { gender: `998500:${OTHER}`, birthdate: `998500:${OTHER}` },
    });
    const xml = xmlOf(env);
    expect(xml).toMatch(/<u [^>]*b="rs" p="dw\.\d"/);
    expect(xml).toContain(OTHER);
    expect(decodeEnvelope(encodeEnvelope(env, { gzip: false }))).toStrictEqual(env);
  });

  it('refuses a basis it cannot read, and one on anything but an update', () => {
    const good = xmlOf(update({ base: `998000:${CHILD}` }));
    for (const [bad, why] of [
      [good.replace('b="rs"', 'b="rs.9"'), /basis clock \("b"\) that cannot be read/],
      [good.replace('b="rs"', 'b="r!s"'), /basis clock \("b"\) that cannot be read/],
      [good.replace('b="rs"', 'b="rs" p="1 2 3"'), /different number of prior clocks/],
      [good.replace('<u ', '<i ').replace('</u>', '</i>'), /not an update/],
    ] as const) {
      expect(() => decodeEnvelope(Buffer.from(bad))).toThrow(why);
    }
  });
});

describe('protocol v1 refuses hostile and broken batches', () => {
  it('refuses entities (billion laughs) before parsing', () => {
    const lol = `<?xml version="1.0"?>
<!DOCTYPE cs [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<cs v="1">&lol9;</cs>`;
    expectRefused(lol, 'The batch declares an entity; entities are refused.');
    expectRefused(gzipSync(lol), 'The batch declares an entity; entities are refused.');
  });

  it('refuses a document type, an external entity and undefined entity references', () => {
    expectRefused(
      `<?xml version="1.0"?><!DOCTYPE cs SYSTEM "file:///etc/passwd"><cs v="1"/>`,
      'The batch declares a document type; document types are refused.',
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i s="1" h="1">&xxe;\tF\t1990</i></r>\n`),
      /^Row 1 of table person has an & that is not one of XML's own references/,
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i s="1" h="1">a &amp b\tF\t1990</i></r>\n`),
      /not valid XML|& that is not/,
    );
  });

  it('refuses processing instructions and CDATA', () => {
    expectRefused(
      doc('<?xml-stylesheet href="evil.xsl"?>'),
      /processing instruction; only the XML declaration/,
    );
    expectRefused(`<?php system('x') ?><cs v="1"/>`, /XML declaration is not XML 1\.0|processing/);
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i s="1" h="1"><![CDATA[p\tF\t1]]></i></r>\n`),
      'The batch contains a CDATA section; the format does not use them.',
    );
  });

  it('refuses nesting deeper than the format allows', () => {
    const deep = '<i>'.repeat(100_000) + '</i>'.repeat(100_000);
    expectRefused(
      doc(`${PERSON_T}<r t="person">${deep}</r>\n`),
      'The batch nests elements deeper than the format allows.',
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i s="1" h="1"><b>x</b></i></r>\n`),
      'The batch nests elements deeper than the format allows.',
    );
    expectRefused(doc('<r t="person"><r t="person"/></r>'), /element "r" inside <r>/);
    expectRefused(
      doc('<script/>'),
      /element "script" inside <cs>, which the format does not allow/,
    );
  });

  it('refuses a gzip bomb without inflating past the limit', async () => {
    // 200 MiB of zeros, gzipped by a stream so the test never holds them either.
    const gz = createGzip({ level: 9 });
    const parts: Buffer[] = [];
    gz.on('data', (b: Buffer) => parts.push(b));
    const done = new Promise((resolve) => gz.on('end', resolve));
    const zeros = Buffer.alloc(MIB);
    for (let i = 0; i < 200; i++) gz.write(zeros);
    gz.end();
    await done;
    const bomb = Buffer.concat(parts);
    expect(bomb.length).toBeLessThan(MIB);
    const before = process.memoryUsage().rss;
    const e = expectRefused(bomb, 'The batch is larger than 64 MiB once unpacked.');
    // zlib stopped at the limit (maxOutputLength), it did not inflate all 200 MiB and measure.
    expect((e.cause as { code?: string }).code).toBe('ERR_BUFFER_TOO_LARGE');
    expect(process.memoryUsage().rss - before).toBeLessThan(150 * MIB);
    expectRefused(bomb, 'The batch is larger than 1 MiB once unpacked.', { maxInflatedBytes: MIB });
  });

  it('refuses an oversize body before looking inside it', () => {
    expectRefused(Buffer.alloc(16 * MIB + 1, 0x20), 'The batch is larger than 16 MiB.');
    const body = encodeEnvelope(realistic(), { gzip: true });
    expectRefused(body, 'The batch is larger than 1 KiB.', { maxBytes: 1024 });
    expectRefused(
      encodeEnvelope(realistic(), { gzip: false }),
      'The batch is larger than 2 KiB once unpacked.',
      { maxInflatedBytes: 2048 },
    );
  });

  it('refuses a truncated gzip stream', () => {
    const body = encodeEnvelope(realistic(), { gzip: true });
    for (const cut of [11, body.length >> 1, body.length - 9, body.length - 1]) {
      expectRefused(body.subarray(0, cut), /gzip stream is cut short|gzip stream is damaged/);
    }
    expectRefused(
      body.subarray(0, body.length >> 1),
      "The batch's gzip stream is cut short; it was probably truncated in transit.",
    );
    const damaged = Buffer.from(body);
    damaged[20] = damaged[20]! ^ 0xff;
    expectRefused(damaged, /gzip stream is (damaged|cut short)/);
  });

  it('refuses XML cut short at any point', () => {
    const env = realistic();
    env.changes = env.changes.slice(0, 6);
    const xml = xmlOf(env);
    const end = xml.lastIndexOf('</cs>') + '</cs>'.length;
    for (let cut = 0; cut < end; cut++) {
      const e = refusal(() => decodeEnvelope(Buffer.from(xml.slice(0, cut))));
      expect(e.kind).toBe('protocol');
    }
    expectRefused(
      xml.slice(0, xml.indexOf('</r>')),
      'The batch ends before its XML is complete; it was probably cut short in transit.',
    );
    expectRefused('', 'The batch is empty.');
  });

  it('refuses rows whose values do not match their columns', () => {
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i s="1" h="1">p1\tF</i></r>\n`),
      'Row 1 of table person has 2 values for 3 columns.',
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i s="1" h="1">p1\tF\t1990\t</i></r>\n`),
      'Row 1 of table person has 4 values for 3 columns.',
    );
    expectRefused(
      doc(
        `${PERSON_T}<r t="person"><i s="1" h="1">p1\tF\t1990</i><u h="1" k="p1" c="1 9">M\t1</u></r>\n`,
      ),
      'Row 2 of table person refers to column 9, but table person lists 3 columns.',
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><u s="1" h="1" k="p1" c="1 1">M\tM</u></r>\n`),
      'Row 1 of table person names column 1 twice.',
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><u s="1" h="1" k="p1" c="0-1 1">p\tM\tM</u></r>\n`),
      'Row 1 of table person names column 1 twice.',
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><u s="1" h="1" k="p1" c="2-1">M\tM</u></r>\n`),
      'Row 1 of table person has a column range that runs backwards.',
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><u s="1" h="1" k="p1" c="0-999999">M</u></r>\n`),
      'Row 1 of table person refers to column 999999, but table person lists 3 columns.',
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><u s="1" h="1" c="1">M</u></r>\n`),
      "Row 1 of table person has no k attribute and does not carry its table's key column as text.",
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i s="1" h="1">p1\t\\x\t1990</i></r>\n`),
      'Row 1 of table person has an unknown escape "\\x".',
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i s="1" h="1">p1\t\\b!!!\t1990</i></r>\n`),
      'Row 1 of table person has a binary value that is not valid base64.',
    );
  });

  it('refuses bad node ids, incarnations, numbers and origins', () => {
    expectRefused(
      doc('', `v="1" from="A1B2C3D4E5F60718" inc="0a1b2c3d" to="${PARENT}"`),
      'The <cs> element has a "from" node id that is not 16 lowercase hex digits.',
    );
    expectRefused(
      doc('', `v="1" from="${CHILD}" inc="0a1b2c3" to="${PARENT}"`),
      'The <cs> element has an incarnation that is not 8 lowercase hex digits.',
    );
    expectRefused(
      doc('', `v="1" from="${CHILD}" inc="0a1b2c3d"`),
      'The <cs> element lacks its to attribute.',
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i s="123456789012345678901" h="1">p\tF\t1</i></r>\n`),
      /Row 1 of table person has a sequence that is not a decimal number of up to 20 digits/,
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i s="18446744073709551616" h="1">p\tF\t1</i></r>\n`),
      'Row 1 of table person has a sequence beyond 64 bits.',
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i o="3" s="1" h="1">p\tF\t1</i></r>\n`),
      'Row 1 of table person refers to origin 3, but the batch lists 1 origin.',
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i s="9" h="1">p\tF\t1</i><i s="9" h="1">q\tF\t1</i></r>\n`),
      'Row 2 of table person has sequence 9, not after 9 from the same origin.',
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i h="1">p\tF\t1</i></r>\n`),
      /lacks its s attribute/,
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i s="1" h="-zzzzzzzzz">p\tF\t1</i></r>\n`),
      'Row 1 of table person has a clock stamp outside 64 bits.',
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person"><i s="1" h="1" evil="1">p\tF\t1</i></r>\n`),
      'Row 1 of table person has an attribute the format does not define ("evil").',
    );
    expectRefused(doc(`<vv>7:1</vv>\n`), /version vector refers to origin 7/);
    expectRefused(
      doc('', `v="1" from="${CHILD}" inc="0a1b2c3d" to="${PARENT}"`).replace(
        `<o>${CHILD}</o>`,
        `<o>${CHILD} ${PARENT} ${CHILD}</o>`,
      ),
      `The origin list names node ${CHILD} twice.`,
    );
    const many = Array.from({ length: 100_001 }, (_, i) => i.toString(16).padStart(16, '0'));
    expectRefused(
      doc('').replace(`<o>${CHILD}</o>`, `<o>${many.join(' ')}</o>`),
      'The origin list names more than 100000 nodes.',
    );
  });

  it('refuses table and column names that could smuggle SQL', () => {
    expectRefused(
      doc('<t n="person`; DROP TABLE x" f="fp" c="a"/>\n'),
      'The batch declares a table named "person`; DROP TABLE x"; table names are 1 to 64 letters, digits, _ or $.',
    );
    expectRefused(
      doc('<t n="person" f="fp" c="uuid gender`=1;--"/>\n'),
      /^The declaration of table person has a column named "gender`=1;--"/,
    );
    expectRefused(
      doc(`${PERSON_T}<r t="person&#96;; DROP TABLE x"><i s="1" h="1">p\tF\t1</i></r>\n`),
      'The batch has rows for table "person`; DROP TABLE x", which it does not declare.',
    );
    const long = 'x'.repeat(10_000);
    const e = expectRefused(doc(`<t n="${long}" f="fp" c="a"/>\n`), /table named "x+…"/);
    expect(e.message.length).toBeLessThan(160);
  });

  it('refuses other protocol versions with a sentence saying which side to upgrade', () => {
    expectRefused(
      doc('', `v="3" from="${CHILD}" inc="0a1b2c3d" to="${PARENT}"`),
      'The other node speaks protocol version 3; this one speaks 2 (and 1). Upgrade ClinicSync on this node.',
    );
    expectRefused(
      '<cs v="0"><future-element/></cs>',
      'The other node speaks protocol version 0; this one speaks 2 (and 1). Upgrade ClinicSync on the other node.',
    );
    expectRefused('<cs from="x"/>', 'The batch does not say which protocol version it speaks.');
    expectRefused('<batch v="1"/>', /root element is "batch", not cs/);
  });

  it('refuses more changes than the limit, before building them', () => {
    const env = realistic();
    const n = env.changes.length;
    expect(
      decodeEnvelope(encodeEnvelope(env, { gzip: false }), { maxChanges: n }).changes,
    ).toHaveLength(n);
    expectRefused(
      encodeEnvelope(env, { gzip: true }),
      `The batch holds more than ${n - 1} changes.`,
      {
        maxChanges: n - 1,
      },
    );
    const rows = '<d s="1" h="1" k="p"/>' + '<d h="1" k="p"/>'.repeat(200_000);
    expectRefused(
      doc(`${PERSON_T}<r t="person">${rows}</r>`),
      'The batch holds more than 100000 changes.',
    );
    const markers = `<x s="1" h="${'1 '.repeat(11)}1"/>`;
    expectRefused(doc(markers), 'The batch holds more than 10 changes.', { maxChanges: 10 });
  });

  it('refuses bodies that are not UTF-8 XML', () => {
    expectRefused(
      Buffer.from([0x3c, 0x63, 0x73, 0xff, 0xfe, 0x3e]),
      'The batch is not valid UTF-8 text.',
    );
    expectRefused('just text', /not valid XML/);
    expectRefused(doc('') + '<cs v="1"/>', 'The batch has more than one root element.');
    expectRefused(doc('\u0001'), 'The batch contains a character XML does not allow (U+0001).');
    expectRefused(doc('text where none belongs'), /text inside <cs>/);
    expectRefused(
      doc('<t n="a" f="b" c="c" c="d"/>'),
      /not valid XML \(line \d+: "Attribute 'c' is repeated\."\)/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Size guard (not a benchmark: `npm run bench` measures the wire; this catches regressions)

describe('protocol v1 size', () => {
  it('keeps 200 typical obs inserts small on the wire', () => {
    const env = obsInserts(200);
    const gz = encodeEnvelope(env, { gzip: true });
    const raw = encodeEnvelope(env, { gzip: false });
    expect(decodeEnvelope(gz)).toStrictEqual(decodeEnvelope(raw));
    // Measured when written: 6 712 bytes gzipped (33.6 per obs) and 60 634 plain (303 per obs).
    // The same rows as SymmetricDS-style CSV (all columns quoted, no clocks) gzip to 6 316 at
    // level 9 and 6 550 at the default level; the difference is mostly each row's clock delta.
    expect(gz.length).toBeLessThan(7_000);
    expect(raw.length).toBeLessThan(62_000);
    expect(gunzipSync(gz)).toEqual(raw);
  });
});

describe('clock fixes', () => {
  it('carry the effective clocks of the receiver’s own changes, and refuse malformed entries', async () => {
    const { encodeEnvelope: enc, decodeEnvelope: dec } =
      await import('../../src/engine/protocol/xml.js');
    const env = {
      version: 1,
      from: { node: 'a1b2c3d4e5f60718', incarnation: '0a1b2c3d' },
      to: 'ffeeddccbbaa9988',
      time: '1764151875123',
      hlc: '115000000000000000',
      vv: {},
      fixes: { '17': '115000000000000001', '18': '115000000000000002' },
      tables: [],
      changes: [],
      more: false,
    };
    expect(dec(enc(env, { gzip: true })).fixes).toEqual(env.fixes);
    expect(dec(enc({ ...env, fixes: {} }, { gzip: false })).fixes).toBeUndefined();
    const bad = enc(env, { gzip: false }).toString().replace('17:', 'x:');
    expect(() => dec(Buffer.from(bad))).toThrow(/sequence:clock/);
  });
});

// ---------------------------------------------------------------------------------------------
// Version 2: compact uuids, p="=", columns ordered by repetition, deflate with the dictionary

/** The Adler-32 of the v2 dictionary: pinned, as the dictionary is part of the protocol. */
const DICTIONARY_V2_ID = '9ef029fa';
const v2 = (env: Envelope): Envelope => ({ ...env, version: 2 });
const v2Xml = (env: Envelope): string => encodeEnvelope(v2(env), { gzip: false }).toString('utf8');

describe('protocol v2', () => {
  it.each([false, true])('carries a realistic envelope exactly (compressed %s)', (gzip) => {
    const env = v2(realistic());
    const body = encodeEnvelope(env, { gzip });
    // Compressed: a zlib stream (0x78) whose header says it was primed with a dictionary.
    expect(body[0] === 0x78 && (body[1]! & 0x20) !== 0).toBe(gzip);
    const back = decodeEnvelope(body);
    expect(back).toStrictEqual(env);
    expect(encodeEnvelope(back, { gzip })).toEqual(body);
    if (gzip) {
      expect(inflateSync(body, { dictionary: DICTIONARY_V2 })).toEqual(
        encodeEnvelope(env, { gzip: false }),
      );
    }
  });

  it('pins its dictionary: another one would be another protocol version', () => {
    // A zlib stream primed with a dictionary names it by its Adler-32 (RFC 1950, DICTID).
    const dictId = deflateSync(Buffer.from('x'), { dictionary: DICTIONARY_V2 }).readUInt32BE(2);
    expect(dictId.toString(16)).toBe(DICTIONARY_V2_ID);
    expect(DICTIONARY_V2.length).toBeLessThan(32 * 1024);
  });

  it('writes canonical uuids as \\U and base64url, and every other text as it is', () => {
    const id = '1c6a5f2e-8b0d-4e4b-9a3f-6d2e7c9b0a14';
    const env = v2({
      ...realistic(),
      tables: [{ name: 'person', fingerprint: 'fp' }],
      changes: [
        {
          origin: CHILD,
          seq: '1',
          hlc: '115616287260000000',
          op: 'I',
          table: 'person',
          ident: id,
          values: {
            uuid: id,
            upper: id.toUpperCase(),
            braced: `{${id}}`,
            looks: '\\UHGpfLosNTkuaP20ufJsKFA',
            concept: '5089AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
          },
        },
        {
          origin: CHILD,
          seq: '2',
          hlc: '115616287260000001',
          op: 'D',
          table: 'person',
          ident: id,
        },
      ],
    });
    const xml = v2Xml(env);
    expect(xml).toContain('\\UHGpfLosNTkuaP20ufJsKFA\t');
    // Only the braced text still holds the uuid in hex.
    expect(xml.split(id)).toHaveLength(2);
    expect(xml).toContain(`{${id}}`);
    expect(xml).toContain(id.toUpperCase());
    expect(xml).toContain('\\\\UHGpfLosNTkuaP20ufJsKFA');
    expect(xml).toContain('<d h="1" k="\\UHGpfLosNTkuaP20ufJsKFA"/>');
    expect(decodeEnvelope(Buffer.from(xml))).toStrictEqual(env);
  });

  it('writes p="=" where the prior clocks are the base, and reads it only with a b', () => {
    const env = v2({
      ...realistic(),
      vv: {},
      tables: [{ name: 'person', fingerprint: 'fp' }],
      changes: [
        {
          origin: CHILD,
          seq: '7',
          hlc: '115616287260000000',
          op: 'U',
          table: 'person',
          ident: 'p-1',
          values: { gender: 'F', birthdate: '2001-01-01' },
          basis: {
            base: `115616287259934464:${CHILD}`,
            prior: {
              gender: `115616287259934464:${CHILD}`,
              birthdate: `115616287259934464:${CHILD}`,
            },
          },
        },
      ],
    });
    const xml = v2Xml(env);
    expect(xml).toContain(' b="1ekg" p="=">');
    expect(decodeEnvelope(Buffer.from(xml))).toStrictEqual(env);
    expectRefused(
      xml.replace(' b="1ekg" p="="', ' p="="'),
      /prior clocks \("p"\) the same as a basis/,
    );
    // Version 1 has no p="=".
    expectRefused(xml.replace('<cs v="2"', '<cs v="1"'), /prior clock \("p"\) that cannot be read/);
  });

  it('puts the columns whose values repeat from row to row last', () => {
    const xml = v2Xml(obsInserts(60));
    const cols = /<t n="obs"[^>]* c="([^"]*)"/.exec(xml)![1]!.split(' ');
    expect(cols[0]).toBe('uuid');
    // The concept and the value change on every obs; the encounter, creator and date do not.
    expect(cols.indexOf('concept_id')).toBeLessThan(cols.indexOf('encounter_id'));
    expect(cols.indexOf('value_numeric')).toBeLessThan(cols.indexOf('creator'));
    expect(cols.slice(-3)).toEqual(expect.arrayContaining(['voided']));
  });

  it('refuses a malformed \\U, and \\U in a version 1 batch', () => {
    const good = v2Xml(realistic());
    const bad = good.replace(/\\U([A-Za-z0-9_-]{21})[AQgw]/, '\\U$1B');
    expectRefused(bad, /\\U uuid that is not 22 base64url characters/);
    expectRefused(good.replace(/\\U[A-Za-z0-9_-]{22}/, '\\Uabc'), /\\U uuid that is not/);
    expectRefused(good.replace('<cs v="2"', '<cs v="1"'), /unknown escape "\\U"/);
  });

  it('refuses a compressed body it cannot or must not inflate', () => {
    const xml = encodeEnvelope(v2(realistic()), { gzip: false });
    expectRefused(deflateSync(xml), /compressed without the protocol dictionary/);
    expectRefused(
      deflateSync(xml, { dictionary: Buffer.from('another dictionary') }),
      /dictionary this version does not know; upgrade ClinicSync on this node/,
    );
    const body = encodeEnvelope(v2(realistic()), { gzip: true });
    expectRefused(body.subarray(0, body.length >> 1), /compressed stream is cut short|damaged/);
    // A bomb: 64 MiB of spaces in a few kilobytes, refused at the limit without inflating all.
    const bomb = deflateSync(Buffer.concat([xml.subarray(0, 50), Buffer.alloc(64 << 20, 32)]), {
      level: 9,
      dictionary: DICTIONARY_V2,
    });
    expect(bomb.length).toBeLessThan(100_000);
    expectRefused(bomb, 'The batch is larger than 1 MiB once unpacked.', {
      maxInflatedBytes: 1 << 20,
    });
  });

  it('still reads version 1, gzipped or not', () => {
    for (const gzip of [false, true]) {
      const body = encodeEnvelope(realistic(), { gzip });
      expect(body.toString('latin1')).not.toContain('\\U');
      expect(decodeEnvelope(body)).toStrictEqual(realistic());
    }
  });

  it('keeps 200 typical obs inserts smaller than version 1 did', () => {
    const env = v2(obsInserts(200));
    const body = encodeEnvelope(env, { gzip: true });
    expect(decodeEnvelope(body)).toStrictEqual(env);
    const v1 = encodeEnvelope(obsInserts(200), { gzip: true }).length;
    // Measured when written: 5 667 bytes (28.3 per obs), v1 6 712 (33.6 per obs).
    expect(body.length).toBeLessThan(5_900);
    expect(body.length).toBeLessThan(v1 * 0.87);
  });
});
