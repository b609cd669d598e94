import { deflateSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { StoredValue } from '../capture/values.js';
import { SyncError } from '../errors.js';
import type { Envelope, VersionVector, WireChange, WireTable } from './types.js';
import {
  decodeIdentV2,
  decodeValue,
  decodeValueV2,
  decodeXmlRefs,
  encodeIdentV2,
  encodeValue,
  encodeValueV2,
  escapeField,
  fromBase36,
  toBase36,
  unescapeField,
  xmlAttr,
  xmlText,
} from './escape.js';
import { prescan } from './prescan.js';
import { basisOrigins, decodeBasis, encodeBasis, isStampText } from './basis.js';
import { misuse, plural, quote, refuse, size } from './refuse.js';
import { DICTIONARY_V2 } from './dictionary.js';

/**
 * ClinicSync protocol v2 (and v1, which it extends): the XML envelope of DESIGN §5 and §7, specified in docs/protocol.md.
 *
 * One `<cs>` root; the origin node ids once (`<o>`), the version vector by origin index (`<vv>`),
 * each table's column list once (`<t>`), then the changes in order: runs of rows of one table in
 * `<r>` segments (rows are tab-separated value lists), and runs of skip markers in `<x>`. Origin,
 * sequence and clock are written relative to the previous change of the same origin, so a
 * typical row carries only its clock delta, its identity and its values.
 *
 * v2 writes the same document with canonical uuids in a compact form (\U + base64url), `p="="`
 * for prior clocks equal to the base, each table's columns ordered so that values repeating from
 * row to row sit together at the end of the line, and compresses with deflate primed by the
 * protocol's dictionary (./dictionary.ts) instead of plain gzip.
 */

export const PROTOCOL_VERSION = 2;
/** Versions this build reads and writes: a parent answers a child in the child's version. */
export const SUPPORTED_VERSIONS: readonly number[] = [2, 1];

export interface EncodeOptions {
  /** compress the document: gzip for v1, deflate with the v2 dictionary (zlib format) for v2 */
  gzip: boolean;
}

export interface DecodeLimits {
  /** largest body accepted as received (compressed or not); default 16 MiB */
  maxBytes?: number;
  /** largest document once gunzipped, enforced while inflating; default 64 MiB */
  maxInflatedBytes?: number;
  /** most changes (rows plus skip markers) in one batch; default 100000 */
  maxChanges?: number;
}

export const DEFAULT_LIMITS: Readonly<Required<DecodeLimits>> = {
  maxBytes: 16 * 1024 * 1024,
  maxInflatedBytes: 64 * 1024 * 1024,
  maxChanges: 100_000,
};

/** Declared tables per batch: far more than any schema ClinicSync syncs (OpenMRS has ~200). */
const MAX_TABLES = 10_000;
/** Longest identity, in UTF-16 code units once unescaped. */
const MAX_IDENT = 4096;
/** Origins per batch: the nodes of a tree, with room to spare. */
const MAX_ORIGINS = 100_000;
/** Columns per table: MySQL's own limit is 4096. */
const MAX_COLUMNS = 4096;
/** Longest node display name carried in `name`. */
const MAX_NODE_NAME = 200;
const U64_MAX = (1n << 64n) - 1n;

const NODE_ID = /^[0-9a-f]{16}$/;
const INCARNATION = /^[0-9a-f]{8}$/;
const DECIMAL = /^[0-9]{1,20}$/;
const CANONICAL_DECIMAL = /^(?:0|[1-9][0-9]{0,19})$/;
const NAME = /^[A-Za-z0-9_$]{1,64}$/;
const FINGERPRINT = /^[A-Za-z0-9_+/=.:-]{1,64}$/;
const INDEX = /^[0-9]{1,6}$/;
const INDEX_OR_RANGE = /^([0-9]{1,6})(?:-([0-9]{1,6}))?$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const TOKEN = /[^ \t\r\n]+/g;
/** The sender's software versions: `name=version` pairs (checked in full by the engine). */
const SOFTWARE = /^[A-Za-z0-9_.+= -]{0,8000}$/;
/** Digests of the sender's identifier generators: 12 hex digits each, space-separated. */
const ID_SOURCES = /^(?:[0-9a-f]{12}(?: [0-9a-f]{12}){0,199})?$/;

/** The whitespace-separated tokens of a list, lazily, refusing the (max+1)th. */
function* tokens(s: string, max: number, tooMany: () => never): Generator<string> {
  let n = 0;
  for (const m of s.matchAll(TOKEN)) {
    if (++n > max) tooMany();
    yield m[0];
  }
}

const NAME_RULE = '1 to 64 letters, digits, _ or $';

// ---------------------------------------------------------------------------------------------
// Encoding

interface TableOut {
  fingerprint: string;
  columns: string[];
  index: Map<string, number>;
  /** the column whose text is the row's identity (uuid, usually), when rows carry one */
  key?: string;
}

function isU64(s: string): boolean {
  return CANONICAL_DECIMAL.test(s) && BigInt(s) <= U64_MAX;
}

/** Checks an envelope against what the format can carry; the decoder would refuse the rest. */
function checkEnvelope(env: Envelope): void {
  if (!SUPPORTED_VERSIONS.includes(env.version)) {
    misuse(
      `This encoder writes protocol versions ${SUPPORTED_VERSIONS.join(' and ')}, not ${env.version}.`,
    );
  }
  if (!NODE_ID.test(env.from.node)) misuse('The envelope\'s "from" node id is not 16 hex digits.');
  if (!INCARNATION.test(env.from.incarnation)) {
    misuse("The envelope's incarnation is not 8 hex digits.");
  }
  if (env.from.name !== undefined && env.from.name.length > MAX_NODE_NAME) {
    misuse(`The envelope's node name is longer than ${MAX_NODE_NAME} characters.`);
  }
  if (!NODE_ID.test(env.to)) misuse('The envelope\'s "to" node id is not 16 hex digits.');
  if (!isU64(env.time)) misuse("The envelope's time is not a 64-bit decimal number.");
  if (!isU64(env.hlc)) misuse("The envelope's clock stamp is not a 64-bit decimal number.");
  for (const [node, seq] of Object.entries(env.vv)) {
    if (!NODE_ID.test(node))
      misuse('The version vector names a node id that is not 16 hex digits.');
    if (!isU64(seq))
      misuse('The version vector holds a sequence that is not a 64-bit decimal number.');
  }
  for (const [seq, hlc] of Object.entries(env.fixes ?? {})) {
    if (!isU64(seq) || !isU64(hlc)) misuse('A clock fix is not a sequence and a clock in decimal.');
  }
  if (env.software !== undefined && !SOFTWARE.test(env.software))
    misuse("The envelope's software versions are not name=version pairs of plain characters.");
  if (env.identifierSources !== undefined && !ID_SOURCES.test(env.identifierSources))
    misuse("The envelope's identifier sources are not 12-hex-digit digests.");
  const names = new Set<string>();
  for (const t of env.tables) {
    if (!NAME.test(t.name)) misuse(`The table name ${quote(t.name)} is not ${NAME_RULE}.`);
    if (!FINGERPRINT.test(t.fingerprint)) {
      misuse(`The fingerprint of table ${t.name} is not 1 to 64 letters, digits or + / = . : _ -.`);
    }
    if (names.has(t.name)) misuse(`The envelope lists table ${t.name} twice.`);
    names.add(t.name);
  }
  const lastSeq = new Map<string, bigint>();
  env.changes.forEach((c, n) => {
    const which = `Change ${n + 1}`;
    if (!NODE_ID.test(c.origin)) misuse(`${which} has an origin that is not 16 hex digits.`);
    if (!isU64(c.seq)) misuse(`${which} has a sequence that is not a 64-bit decimal number.`);
    if (!isU64(c.hlc)) misuse(`${which} has a clock stamp that is not a 64-bit decimal number.`);
    const seq = BigInt(c.seq);
    const last = lastSeq.get(c.origin);
    if (last !== undefined && seq <= last) {
      misuse(`${which} has sequence ${c.seq}, not after ${last} from the same origin.`);
    }
    lastSeq.set(c.origin, seq);
    if (c.op === 'S') {
      if (c.table !== '' || c.ident !== '' || c.values !== undefined || c.oldIdent !== undefined) {
        misuse(`${which} is a skip marker but carries a table, identity or values.`);
      }
      return;
    }
    if (c.op !== 'I' && c.op !== 'U' && c.op !== 'D') misuse(`${which} has an unknown operation.`);
    if (!names.has(c.table)) {
      misuse(`${which} is for table ${quote(c.table)}, which the envelope's table list lacks.`);
    }
    if (c.ident.length < 1 || c.ident.length > MAX_IDENT) {
      misuse(`${which} has an identity that is empty or longer than ${MAX_IDENT} characters.`);
    }
    if (c.oldIdent !== undefined && c.oldIdent.length > MAX_IDENT) {
      misuse(`${which} has an old identity longer than ${MAX_IDENT} characters.`);
    }
    if (c.basis !== undefined) {
      if (c.op !== 'U') misuse(`${which} carries a basis but is not an update.`);
      const stamps = [c.basis.base, ...Object.values(c.basis.prior ?? {})];
      if (stamps.some((x) => x !== undefined && !isStampText(x)))
        misuse(`${which} has a basis clock that is not "hlc:origin".`);
      if (Object.keys(c.basis.prior ?? {}).some((col) => !Object.hasOwn(c.values ?? {}, col)))
        misuse(`${which} has a prior clock for a column it does not carry.`);
    }
    for (const [col, v] of Object.entries(c.values ?? {})) {
      if (!NAME.test(col))
        misuse(`${which} has a column name ${quote(col)} that is not ${NAME_RULE}.`);
      const ok =
        v === null ||
        typeof v === 'string' ||
        (typeof v === 'object' && typeof (v as { b?: unknown }).b === 'string');
      if (!ok) misuse(`${which} has a value in column ${col} that is not text, bytes or NULL.`);
      if (v !== null && typeof v === 'object' && !BASE64.test(v.b)) {
        misuse(`${which} has a binary value in column ${col} that is not base64.`);
      }
    }
  });
}

/** Ascending column indexes as written in c: runs of three or more as a range ("0-11 14"). */
function indexList(idx: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && idx[j + 1] === idx[j]! + 1) j++;
    if (j - i >= 2) parts.push(`${idx[i]}-${idx[j]}`);
    else for (let k = i; k <= j; k++) parts.push(String(idx[k]));
    i = j + 1;
  }
  return parts.join(' ');
}

/** The document for an envelope (UTF-8 text before gzip). */
function envelopeXml(env: Envelope): string {
  checkEnvelope(env);

  const origins = new Map<string, number>();
  const originOf = (node: string): number => {
    let o = origins.get(node);
    if (o === undefined) origins.set(node, (o = origins.size));
    return o;
  };
  for (const c of env.changes) originOf(c.origin);
  for (const node of Object.keys(env.vv)) originOf(node);
  for (const c of env.changes) for (const node of basisOrigins(c.basis)) originOf(node);

  const tables = new Map<string, TableOut>();
  for (const t of env.tables) {
    tables.set(t.name, { fingerprint: t.fingerprint, columns: [], index: new Map() });
  }
  for (const c of env.changes) {
    if (c.op === 'S' || !c.values) continue;
    const t = tables.get(c.table)!;
    for (const [col, v] of Object.entries(c.values)) {
      if (!t.index.has(col)) {
        t.index.set(col, t.columns.length);
        t.columns.push(col);
      }
      if (t.key === undefined && v === c.ident) t.key = col;
    }
  }
  const v2 = env.version >= 2;
  if (v2) orderByRepetition(tables, env.changes);
  // The key column goes first: the row's identity then opens its line (gzip does best so).
  for (const t of tables.values()) {
    if (t.key === undefined) continue;
    t.columns = [t.key, ...t.columns.filter((col) => col !== t.key)];
    t.columns.forEach((col, j) => t.index.set(col, j));
  }
  const ident = v2 ? encodeIdentV2 : escapeField;
  const value = v2 ? encodeValueV2 : encodeValue;

  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>\n'];
  const name = env.from.name === undefined ? '' : ` name="${xmlAttr(escapeField(env.from.name))}"`;
  const sw =
    (env.software === undefined ? '' : ` sw="${env.software}"`) +
    (env.identifierSources === undefined ? '' : ` ids="${env.identifierSources}"`);
  out.push(
    `<cs v="${env.version}" from="${env.from.node}" inc="${env.from.incarnation}"${name}` +
      ` to="${env.to}" t="${env.time}" h="${env.hlc}" more="${env.more ? 1 : 0}"${sw}>\n`,
  );
  if (origins.size) out.push(`<o>${[...origins.keys()].join(' ')}</o>\n`);
  const vv = Object.entries(env.vv);
  if (vv.length)
    out.push(`<vv>${vv.map(([node, seq]) => `${origins.get(node)}:${seq}`).join(' ')}</vv>\n`);
  const fixes = Object.entries(env.fixes ?? {});
  if (fixes.length) out.push(`<fx>${fixes.map(([seq, hlc]) => `${seq}:${hlc}`).join(' ')}</fx>\n`);
  for (const [tname, t] of tables) {
    const key = t.key === undefined ? '' : ` k="${t.key}"`;
    out.push(`<t n="${tname}" f="${xmlAttr(t.fingerprint)}"${key} c="${t.columns.join(' ')}"/>\n`);
  }

  const envHlc = BigInt(env.hlc);
  const prev = new Map<number, { seq: bigint; hlc: bigint }>();
  let lastOrigin = 0;
  let segment: string | null = null;
  // Origin, sequence and clock of change c, relative to the one before it from the same origin:
  // o only when the origin changes, s only when the sequence does not follow on, h always.
  const position = (c: WireChange): { os: string; h: string } => {
    const o = origins.get(c.origin)!;
    const p = prev.get(o);
    const seq = BigInt(c.seq);
    const hlc = BigInt(c.hlc);
    let os = o !== lastOrigin ? ` o="${o}"` : '';
    if (!p || seq !== p.seq + 1n) os += ` s="${c.seq}"`;
    prev.set(o, { seq, hlc });
    lastOrigin = o;
    return { os, h: toBase36(hlc - (p ? p.hlc : envHlc)) };
  };

  const changes = env.changes;
  for (let n = 0; n < changes.length; n++) {
    const c = changes[n]!;
    if (c.op === 'S') {
      if (segment !== null) out.push('</r>\n');
      segment = null;
      const { os, h } = position(c);
      const hs = [h];
      // A run of markers from one origin with consecutive sequences shares one element.
      for (let next = changes[n + 1]; next?.op === 'S' && next.origin === c.origin;) {
        const p = prev.get(lastOrigin)!;
        if (BigInt(next.seq) !== p.seq + 1n) break;
        hs.push(position(next).h);
        next = changes[++n + 1];
      }
      out.push(`<x${os} h="${hs.join(' ')}"/>\n`);
      continue;
    }
    if (segment !== c.table) {
      if (segment !== null) out.push('</r>\n');
      out.push(`<r t="${c.table}">\n`);
      segment = c.table;
    }
    const t = tables.get(c.table)!;
    const tag = c.op === 'I' ? 'i' : c.op === 'U' ? 'u' : 'd';
    const { os, h } = position(c);
    let attrs = `${os} h="${h}"`;
    // The identity is left out when the row carries it as the value of the table's key column.
    if (t.key === undefined || c.values?.[t.key] !== c.ident || !Object.hasOwn(c.values, t.key)) {
      attrs += ` k="${xmlAttr(ident(c.ident))}"`;
    }
    if (c.oldIdent !== undefined) attrs += ` ok="${xmlAttr(ident(c.oldIdent))}"`;
    let text = '';
    // An insert or update without values is written as one carrying no columns (decoded as {}).
    const values = c.values ?? (c.op === 'D' ? undefined : {});
    if (values && (c.op !== 'D' || Object.keys(values).length)) {
      // Values go in table order. Every column of the table: no c; otherwise c lists the indexes.
      const idx = Object.keys(values)
        .map((col) => t.index.get(col)!)
        .sort((x, y) => x - y);
      if (c.op === 'D' || idx.length !== t.columns.length) attrs += ` c="${indexList(idx)}"`;
      const carried = idx.map((j) => t.columns[j]!);
      const originIndex = (n: string): number => origins.get(n)!;
      attrs += encodeBasis(c.basis, carried, BigInt(c.hlc), c.origin, originIndex, v2);
      text = idx.map((j) => xmlText(value(values[t.columns[j]!]!))).join('\t');
    }
    out.push(text === '' ? `<${tag}${attrs}/>\n` : `<${tag}${attrs}>${text}</${tag}>\n`);
  }
  if (segment !== null) out.push('</r>\n');
  out.push('</cs>\n');
  return out.join('');
}

/**
 * Puts each table's columns (in first-seen order) in order of how often a row repeats the value
 * the table's previous row had there, least first. Values that change on every row (a new obs'
 * concept and value) then come right after the identity, and those a run of rows shares (the
 * patient, encounter, creator, dates, NULLs) form one stretch that deflate codes as a single match
 * of the line before. Saves about a twentieth of an obs-heavy batch. Stable, so re-encoding a
 * decoded batch gives the same bytes.
 */
function orderByRepetition(tables: Map<string, TableOut>, changes: readonly WireChange[]): void {
  const repeats = new Map<string, Map<string, number>>();
  const last = new Map<string, Map<string, string>>();
  for (const c of changes) {
    if (c.op === 'S' || !c.values) continue;
    let counts = repeats.get(c.table);
    let before = last.get(c.table);
    if (!counts || !before) {
      repeats.set(c.table, (counts = new Map()));
      last.set(c.table, (before = new Map()));
    }
    for (const [col, v] of Object.entries(c.values)) {
      const text = encodeValue(v);
      if (before.get(col) === text) counts.set(col, (counts.get(col) ?? 0) + 1);
      before.set(col, text);
    }
  }
  for (const [name, t] of tables) {
    const counts = repeats.get(name);
    if (!counts) continue;
    const n = (col: string): number => counts.get(col) ?? 0;
    t.columns = [...t.columns].sort((x, y) => n(x) - n(y));
    t.columns.forEach((col, j) => t.index.set(col, j));
  }
}

/**
 * Writes an envelope in its version (v1 or v2), compressed when asked: v1 with gzip, v2 as a zlib
 * stream primed with the v2 dictionary. Throws SyncError kind 'usage' for an envelope the format
 * cannot carry (a bad node id, a change for an undeclared table…).
 */
export function encodeEnvelope(env: Envelope, opts: EncodeOptions): Buffer {
  const body = Buffer.from(envelopeXml(env), 'utf8');
  if (!opts.gzip) return body;
  return env.version >= 2
    ? deflateSync(body, { level: 9, dictionary: DICTIONARY_V2 })
    : gzipSync(body, { level: 9 });
}

/** Is this body compressed (gzip, or zlib as v2 writes it)? A reply is compressed likewise. */
export function isCompressed(body: Buffer): boolean {
  return isGzip(body) || isZlib(body);
}

function isGzip(body: Buffer): boolean {
  return body.length >= 2 && body[0] === 0x1f && body[1] === 0x8b;
}

/** A zlib header (RFC 1950): deflate, its check bits right. XML cannot start with 0x78 ('x'). */
function isZlib(body: Buffer): boolean {
  return body.length >= 2 && body[0] === 0x78 && (body[0]! * 256 + body[1]!) % 31 === 0;
}

// ---------------------------------------------------------------------------------------------
// Decoding

interface TableIn {
  cols: string[];
  key: string | undefined;
  /** rows read so far, to name a row in a sentence */
  rows: number;
}

interface El {
  name: string;
  attrs: Map<string, string>;
  kids: (El | string)[];
}

const NOT_XML = 'The batch is not valid XML.';

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  allowBooleanAttributes: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: false,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  removeNSPrefix: false,
  // cs > r > row is the deepest the format goes (the prescan already refuses anything deeper).
  maxNestedTags: 2,
});

function toElements(nodes: unknown): (El | string)[] {
  if (!Array.isArray(nodes)) refuse(NOT_XML);
  const out: (El | string)[] = [];
  for (const node of nodes as unknown[]) {
    if (typeof node !== 'object' || node === null) refuse(NOT_XML);
    const rec = node as Record<string, unknown>;
    for (const key of Object.keys(rec)) {
      if (key === ':@') continue;
      if (key === '#text') {
        out.push(String(rec[key]));
        continue;
      }
      const attrs = new Map<string, string>();
      const raw = rec[':@'];
      if (raw !== undefined) {
        if (typeof raw !== 'object' || raw === null) refuse(NOT_XML);
        for (const [k, v] of Object.entries(raw)) {
          if (!k.startsWith('@_') || typeof v !== 'string') refuse(NOT_XML);
          attrs.set(k.slice(2), v);
        }
      }
      out.push({ name: key, attrs, kids: toElements(rec[key]) });
    }
  }
  return out;
}

function describeVersions(): string {
  const [newest, ...older] = [...SUPPORTED_VERSIONS].sort((a, b) => b - a);
  return older.length ? `${newest} (and ${older.join(', ')})` : `${newest}`;
}

function checkVersion(rawAttrs: Map<string, string>): number {
  const v = rawAttrs.get('v');
  if (v === undefined || !/^[0-9]{1,9}$/.test(v)) {
    refuse('The batch does not say which protocol version it speaks.');
  }
  const n = Number(v);
  if (!SUPPORTED_VERSIONS.includes(n)) {
    const newer = n > Math.max(...SUPPORTED_VERSIONS);
    refuse(
      `The other node speaks protocol version ${n}; this one speaks ${describeVersions()}. ` +
        `Upgrade ClinicSync on ${newer ? 'this' : 'the other'} node.`,
    );
  }
  return n;
}

/** Reads an element's attributes: refuses unknown ones and missing required ones. */
function attributes(
  el: El,
  where: string,
  known: readonly string[],
  required: readonly string[],
): Map<string, string> {
  for (const k of el.attrs.keys()) {
    if (!known.includes(k))
      refuse(`${where} has an attribute the format does not define (${quote(k, 20)}).`);
  }
  for (const k of required) if (!el.attrs.has(k)) refuse(`${where} lacks its ${k} attribute.`);
  return el.attrs;
}

function textOf(el: El, where: string): string {
  let raw = '';
  for (const kid of el.kids) {
    if (typeof kid !== 'string') refuse(`${where} holds an element where only text belongs.`);
    raw += kid;
  }
  return decodeXmlRefs(raw, where);
}

function u64(raw: string, where: string, what: string): bigint {
  if (!DECIMAL.test(raw))
    refuse(`${where} has ${what} that is not a decimal number of up to 20 digits.`);
  const n = BigInt(raw);
  if (n > U64_MAX) refuse(`${where} has ${what} beyond 64 bits.`);
  return n;
}

function gunzip(body: Buffer, maxInflatedBytes: number): Buffer {
  try {
    return gunzipSync(body, { maxOutputLength: maxInflatedBytes });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw refuseWith(`The batch is larger than ${size(maxInflatedBytes)} once unpacked.`, e);
    }
    if (code === 'Z_BUF_ERROR' || (e as Error).message === 'unexpected end of file') {
      throw refuseWith(
        "The batch's gzip stream is cut short; it was probably truncated in transit.",
        e,
      );
    }
    throw refuseWith("The batch's gzip stream is damaged.", e);
  }
}

/** Inflates a zlib stream primed with the v2 dictionary, never past maxInflatedBytes. */
function inflateV2(body: Buffer, maxInflatedBytes: number): Buffer {
  // FDICT: a stream primed with a dictionary; zlib itself checks the dictionary's id.
  if ((body[1]! & 0x20) === 0) {
    refuse('The batch is compressed without the protocol dictionary, which ClinicSync never does.');
  }
  try {
    return inflateSync(body, { maxOutputLength: maxInflatedBytes, dictionary: DICTIONARY_V2 });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw refuseWith(`The batch is larger than ${size(maxInflatedBytes)} once unpacked.`, e);
    }
    if (code === 'Z_NEED_DICT' || /dictionary/i.test((e as Error).message)) {
      throw refuseWith(
        'The batch is compressed with a dictionary this version does not know; upgrade ClinicSync on this node.',
        e,
      );
    }
    if (code === 'Z_BUF_ERROR' || (e as Error).message === 'unexpected end of file') {
      throw refuseWith(
        "The batch's compressed stream is cut short; it was probably truncated in transit.",
        e,
      );
    }
    throw refuseWith("The batch's compressed stream is damaged.", e);
  }
}

function refuseWith(sentence: string, cause: unknown): SyncError {
  return new SyncError('protocol', sentence, { cause });
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * Reads a protocol v2 or v1 batch, compressed or not (told apart by the first bytes: gzip's magic,
 * a zlib header, or XML). Every refusal is a SyncError kind 'protocol' with one sentence; nothing
 * is inflated or parsed beyond the limits.
 */
export function decodeEnvelope(body: Buffer, opts: DecodeLimits = {}): Envelope {
  const limits = {
    maxBytes: opts.maxBytes ?? DEFAULT_LIMITS.maxBytes,
    maxInflatedBytes: opts.maxInflatedBytes ?? DEFAULT_LIMITS.maxInflatedBytes,
    maxChanges: opts.maxChanges ?? DEFAULT_LIMITS.maxChanges,
  };
  if (body.length > limits.maxBytes) refuse(`The batch is larger than ${size(limits.maxBytes)}.`);
  let doc: Buffer = body;
  if (isGzip(body)) {
    doc = gunzip(body, limits.maxInflatedBytes);
  } else if (isZlib(body)) {
    doc = inflateV2(body, limits.maxInflatedBytes);
  } else if (body.length > limits.maxInflatedBytes) {
    refuse(`The batch is larger than ${size(limits.maxInflatedBytes)} once unpacked.`);
  }
  let xml: string;
  try {
    xml = utf8.decode(doc);
  } catch (e) {
    throw refuseWith('The batch is not valid UTF-8 text.', e);
  }

  let version = 0;
  prescan(xml, { maxChanges: limits.maxChanges, maxTables: MAX_TABLES }, (rootAttrs) => {
    version = checkVersion(rootAttrs);
  });
  const valid = XMLValidator.validate(xml, { allowBooleanAttributes: false });
  if (valid !== true) {
    refuse(`The batch is not valid XML (line ${valid.err.line}: ${quote(valid.err.msg)}).`);
  }
  let parsed: unknown;
  try {
    parsed = parser.parse(xml);
  } catch (e) {
    throw refuseWith(NOT_XML, e);
  }
  const root = toElements(parsed).find((n): n is El => typeof n !== 'string');
  if (!root || root.name !== 'cs') refuse(NOT_XML);
  return readEnvelope(root, version, limits.maxChanges);
}

function readEnvelope(root: El, version: number, maxChanges: number): Envelope {
  const where = 'The <cs> element';
  const a = attributes(
    root,
    where,
    ['v', 'from', 'inc', 'name', 'to', 't', 'h', 'more', 'sw', 'ids'],
    ['v', 'from', 'inc', 'to', 't', 'h', 'more'],
  );
  const attr = (k: string): string => decodeXmlRefs(a.get(k) ?? '', where);
  const from = attr('from');
  if (!NODE_ID.test(from))
    refuse(`${where} has a "from" node id that is not 16 lowercase hex digits.`);
  const inc = attr('inc');
  if (!INCARNATION.test(inc))
    refuse(`${where} has an incarnation that is not 8 lowercase hex digits.`);
  const to = attr('to');
  if (!NODE_ID.test(to)) refuse(`${where} has a "to" node id that is not 16 lowercase hex digits.`);
  const time = u64(attr('t'), where, 'a time');
  const envHlc = u64(attr('h'), where, 'a clock stamp');
  const more = attr('more');
  if (more !== '0' && more !== '1')
    refuse(`${where} has a "more" attribute that is neither 0 nor 1.`);
  let name: string | undefined;
  if (a.has('name')) {
    name = unescapeField(attr('name'), where);
    if (name.length > MAX_NODE_NAME)
      refuse(`${where} has a node name longer than ${MAX_NODE_NAME} characters.`);
  }
  const software = a.has('sw') ? attr('sw') : undefined;
  if (software !== undefined && !SOFTWARE.test(software))
    refuse(`${where} has software versions (sw) that are not name=version pairs.`);
  const idSources = a.has('ids') ? attr('ids') : undefined;
  if (idSources !== undefined && !ID_SOURCES.test(idSources))
    refuse(`${where} has identifier sources (ids) that are not 12-hex-digit digests.`);

  const v2 = version >= 2;
  const readIdent = (text: string, where: string): string =>
    v2 ? decodeIdentV2(text, where) : unescapeField(text, where);
  const readValue = v2 ? decodeValueV2 : decodeValue;
  const origins: string[] = [];
  const vv: VersionVector = {};
  const tables: WireTable[] = [];
  const columns = new Map<string, TableIn>();
  const changes: WireChange[] = [];
  const prev = new Map<number, { seq: bigint; hlc: bigint }>();
  let lastOrigin = 0;
  let phase = 0;
  let markerGroups = 0;
  const fixes: Record<string, string> = {};
  const PHASE: Record<string, number> = { o: 0, vv: 1, fx: 1.5, t: 2, r: 3, x: 3 };

  // Origin, sequence and clock of one change, each relative to the previous change of its origin.
  const position = (
    attrs: Map<string, string>,
    where: string,
    h: string,
  ): { origin: number; seq: bigint; hlc: bigint } => {
    let origin = lastOrigin;
    const o = attrs.get('o');
    if (o !== undefined) {
      if (!INDEX.test(o))
        refuse(`${where} has an origin index that is not a small decimal number.`);
      origin = Number(o);
    }
    if (origin >= origins.length) {
      refuse(
        `${where} refers to origin ${origin}, but the batch lists ${plural(origins.length, 'origin')}.`,
      );
    }
    const p = prev.get(origin);
    const s = attrs.get('s');
    let seq: bigint;
    if (s !== undefined) seq = u64(s, where, 'a sequence');
    else if (p) seq = p.seq + 1n;
    else refuse(`${where} lacks its s attribute (the first change of each origin carries one).`);
    if (seq > U64_MAX) refuse(`${where} has a sequence beyond 64 bits.`);
    if (p && seq <= p.seq)
      refuse(`${where} has sequence ${seq}, not after ${p.seq} from the same origin.`);
    const delta = fromBase36(h);
    if (delta === null) refuse(`${where} has a clock delta that is not a base-36 number.`);
    const hlc = (p ? p.hlc : envHlc) + delta;
    if (hlc < 0n || hlc > U64_MAX) refuse(`${where} has a clock stamp outside 64 bits.`);
    prev.set(origin, { seq, hlc });
    lastOrigin = origin;
    return { origin, seq, hlc };
  };

  const push = (c: WireChange): void => {
    changes.push(c);
    if (changes.length > maxChanges) refuse(`The batch holds more than ${maxChanges} changes.`);
  };

  for (const kid of root.kids) {
    if (typeof kid === 'string') {
      if (!/^[ \t\r\n]*$/.test(kid))
        refuse('The batch has text inside <cs>, where only elements belong.');
      continue;
    }
    const ph = PHASE[kid.name]!;
    if (ph < phase) refuse(`The batch has <${kid.name}> after the elements that must follow it.`);
    phase = ph;

    if (kid.name === 'o') {
      attributes(kid, 'The origin list', [], []);
      const text = textOf(kid, 'The origin list').trim();
      const seen = new Set<string>();
      const tooMany = (): never => refuse(`The origin list names more than ${MAX_ORIGINS} nodes.`);
      for (const id of tokens(text, MAX_ORIGINS, tooMany)) {
        if (!NODE_ID.test(id)) {
          refuse('The origin list holds a node id that is not 16 lowercase hex digits.');
        }
        if (seen.has(id)) refuse(`The origin list names node ${id} twice.`);
        seen.add(id);
        origins.push(id);
      }
    } else if (kid.name === 'vv') {
      attributes(kid, 'The version vector', [], []);
      const text = textOf(kid, 'The version vector').trim();
      const tooMany = (): never => refuse('The version vector has more entries than origins.');
      for (const entry of tokens(text, origins.length, tooMany)) {
        const m = /^([0-9]{1,6}):([0-9]{1,20})$/.exec(entry);
        if (!m) refuse('The version vector holds an entry that is not origin:sequence.');
        const node = origins[Number(m[1])];
        if (node === undefined)
          refuse(`The version vector refers to origin ${m[1]}, which the origin list lacks.`);
        if (Object.hasOwn(vv, node)) refuse(`The version vector names node ${node} twice.`);
        vv[node] = u64(m[2]!, 'The version vector', 'a sequence').toString();
      }
    } else if (kid.name === 'fx') {
      attributes(kid, 'The clock fixes', [], []);
      const text = textOf(kid, 'The clock fixes').trim();
      for (const entry of text ? text.split(/\s+/) : []) {
        const m = /^([0-9]{1,20}):([0-9]{1,20})$/.exec(entry);
        if (!m) refuse('The clock fixes hold an entry that is not sequence:clock.');
        if (Object.keys(fixes).length >= maxChanges)
          refuse('The batch holds too many clock fixes.');
        fixes[u64(m[1]!, 'The clock fixes', 'a sequence').toString()] = u64(
          m[2]!,
          'The clock fixes',
          'a clock',
        ).toString();
      }
    } else if (kid.name === 't') {
      const a = attributes(kid, 'A table declaration', ['n', 'f', 'k', 'c'], ['n', 'f', 'c']);
      const n = decodeXmlRefs(a.get('n')!, 'A table declaration');
      if (!NAME.test(n)) {
        refuse(`The batch declares a table named ${quote(n)}; table names are ${NAME_RULE}.`);
      }
      const where = `The declaration of table ${n}`;
      if (columns.has(n)) refuse(`The batch declares table ${n} twice.`);
      const f = decodeXmlRefs(a.get('f')!, where);
      if (!FINGERPRINT.test(f))
        refuse(`${where} has a fingerprint that is not 1 to 64 letters, digits or + / = . : _ -.`);
      const c = decodeXmlRefs(a.get('c')!, where).trim();
      const cols: string[] = [];
      const seen = new Set<string>();
      const tooMany = (): never => refuse(`${where} lists more than ${MAX_COLUMNS} columns.`);
      for (const col of tokens(c, MAX_COLUMNS, tooMany)) {
        cols.push(col);
        if (!NAME.test(col))
          refuse(`${where} has a column named ${quote(col)}; column names are ${NAME_RULE}.`);
        if (seen.has(col)) refuse(`${where} names column ${col} twice.`);
        seen.add(col);
      }
      const key = a.has('k') ? decodeXmlRefs(a.get('k')!, where) : undefined;
      if (key !== undefined && !seen.has(key)) {
        refuse(`${where} names a key column (${quote(key, 64)}) that is not in its column list.`);
      }
      if (textOf(kid, where).trim() !== '') refuse(`${where} holds text; it should be empty.`);
      tables.push({ name: n, fingerprint: f });
      columns.set(n, { cols, key, rows: 0 });
    } else if (kid.name === 'r') {
      const a = attributes(kid, 'A segment of rows', ['t'], ['t']);
      const tname = decodeXmlRefs(a.get('t')!, 'A segment of rows');
      const table = NAME.test(tname) ? columns.get(tname) : undefined;
      if (!table)
        refuse(`The batch has rows for table ${quote(tname)}, which it does not declare.`);
      let rows = 0;
      for (const row of kid.kids) {
        if (typeof row === 'string') {
          if (!/^[ \t\r\n]*$/.test(row))
            refuse(`The rows of table ${tname} are interleaved with text.`);
          continue;
        }
        rows++;
        push(readRow(row, tname, table, position));
      }
      if (rows === 0) refuse(`The batch has an empty segment of rows for table ${tname}.`);
    } else {
      // x: a run of skip markers with consecutive sequences
      const where = `Skip marker group ${++markerGroups}`;
      const a = attributes(kid, where, ['o', 's', 'h'], ['h']);
      if (textOf(kid, where).trim() !== '') refuse(`${where} holds text; it should be empty.`);
      const hs = decodeXmlRefs(a.get('h')!, where);
      if (hs.trim() === '') refuse(`${where} has no clock deltas, so no markers.`);
      let attrs = a;
      // Lazily: push() refuses the batch as soon as the change limit is passed.
      for (const h of tokens(hs, Infinity, () => refuse(NOT_XML))) {
        const p = position(attrs, where, h);
        push({
          origin: origins[p.origin]!,
          seq: p.seq.toString(),
          hlc: p.hlc.toString(),
          op: 'S',
          table: '',
          ident: '',
        });
        attrs = new Map(); // the rest of the run: same origin, next sequence
      }
    }
  }

  const env: Envelope = {
    version,
    from:
      name === undefined
        ? { node: from, incarnation: inc }
        : { node: from, incarnation: inc, name },
    to,
    time: time.toString(),
    hlc: envHlc.toString(),
    vv,
    ...(Object.keys(fixes).length ? { fixes } : {}),
    tables,
    changes,
    more: more === '1',
    ...(software !== undefined ? { software } : {}),
    ...(idSources !== undefined ? { identifierSources: idSources } : {}),
  };
  return env;

  function readRow(row: El, tname: string, table: TableIn, pos: typeof position): WireChange {
    const where = `Row ${++table.rows} of table ${tname}`;
    const op = row.name === 'i' ? 'I' : row.name === 'u' ? 'U' : 'D';
    const a = attributes(row, where, ['o', 's', 'h', 'k', 'ok', 'c', 'b', 'p'], ['h']);
    const p = pos(a, where, decodeXmlRefs(a.get('h')!, where));
    const change: WireChange = {
      origin: origins[p.origin]!,
      seq: p.seq.toString(),
      hlc: p.hlc.toString(),
      op,
      table: tname,
      ident: '',
    };
    const k = a.get('k');
    if (k !== undefined) change.ident = readIdent(decodeXmlRefs(k, where), where);
    if (a.has('ok')) {
      const old = readIdent(decodeXmlRefs(a.get('ok')!, where), where);
      if (old.length > MAX_IDENT) {
        refuse(`${where} has an old identity longer than ${MAX_IDENT} characters.`);
      }
      change.oldIdent = old;
    }
    const values = readValues(row, a, where, op, tname, table);
    if (values) change.values = values;
    if (a.has('b') || a.has('p')) {
      if (op !== 'U') refuse(`${where} carries a basis ("b" or "p") but is not an update.`);
      const carried = Object.keys(values ?? {}).sort(
        (x, y) => table.cols.indexOf(x) - table.cols.indexOf(y),
      );
      const get = (k: string) => (a.has(k) ? decodeXmlRefs(a.get(k)!, where) : undefined);
      const basis = decodeBasis(get('b'), get('p'), carried, p.hlc, change.origin, origins, v2);
      if (typeof basis === 'string') refuse(`${where} ${basis}.`);
      if (basis.base !== undefined || basis.prior !== undefined) change.basis = basis;
    }
    if (k === undefined) {
      // No k: the identity is the row's value in the table's key column.
      const v = table.key === undefined || !values ? undefined : values[table.key];
      if (typeof v !== 'string') {
        refuse(`${where} has no k attribute and does not carry its table's key column as text.`);
      }
      change.ident = v;
    }
    if (change.ident === '') refuse(`${where} has an empty identity.`);
    if (change.ident.length > MAX_IDENT) {
      refuse(`${where} has an identity longer than ${MAX_IDENT} characters.`);
    }
    return change;
  }

  function readValues(
    row: El,
    a: Map<string, string>,
    where: string,
    op: WireChange['op'],
    tname: string,
    table: TableIn,
  ): Record<string, StoredValue> | undefined {
    const text = textOf(row, where);
    const c = a.get('c');
    if (op === 'D' && c === undefined) {
      if (text !== '') refuse(`${where} is a delete with values but no column list.`);
      return undefined;
    }
    let idx: number[];
    if (c === undefined) idx = table.cols.map((_, j) => j);
    else {
      const list = decodeXmlRefs(c, where).trim();
      idx = [];
      const seen = new Set<number>();
      const tooMany = (): never => refuse(`${where} names more columns than its table lists.`);
      for (const s of tokens(list, table.cols.length, tooMany)) {
        const m = INDEX_OR_RANGE.exec(s);
        if (!m) refuse(`${where} has a column index that is not a small decimal number or range.`);
        const from = Number(m[1]);
        const to = m[2] === undefined ? from : Number(m[2]);
        if (to < from) refuse(`${where} has a column range that runs backwards.`);
        if (to >= table.cols.length) {
          refuse(
            `${where} refers to column ${to}, but table ${tname} lists ${plural(table.cols.length, 'column')}.`,
          );
        }
        for (let j = from; j <= to; j++) {
          if (seen.has(j)) refuse(`${where} names column ${j} twice.`);
          seen.add(j);
          idx.push(j);
        }
      }
    }
    const fields = idx.length === 0 && text === '' ? [] : text.split('\t');
    if (fields.length !== idx.length) {
      refuse(`${where} has ${plural(fields.length, 'value')} for ${plural(idx.length, 'column')}.`);
    }
    const entries: [string, StoredValue][] = idx.map((j, n) => [
      table.cols[j]!,
      readValue(fields[n]!, where),
    ]);
    // fromEntries defines own properties, so a column named __proto__ stays a column.
    return Object.fromEntries(entries) as Record<string, StoredValue>;
  }
}
