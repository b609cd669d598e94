import { quote, refuse } from './refuse.js';

/**
 * A structural pass over a received batch before any XML parser sees it (DESIGN §7, §8): refuses
 * document types, entities, processing instructions and CDATA; allows only the elements of the
 * format, each under its own parent (so nesting can never go deeper than three levels); counts
 * rows against the limit before a single node object is built; and tells a batch cut short in
 * transit from one that is merely malformed. It reads the root's attributes so the protocol version
 * is checked before the rest of the structure, whose shape a later version may change.
 */

/** Which elements may appear under which: '' is the document itself. */
const CHILDREN = new Map<string, readonly string[]>([
  ['', ['cs']],
  ['cs', ['o', 'vv', 'fx', 't', 'r', 'x']],
  ['r', ['i', 'u', 'd']],
  ['o', []],
  ['vv', []],
  ['fx', []],
  ['t', []],
  ['x', []],
  ['i', []],
  ['u', []],
  ['d', []],
]);

export interface ScanLimits {
  /** rows plus skip-marker groups; each carries at least one change */
  maxChanges: number;
  maxTables: number;
}

/** More than any element of the format carries (the root has eight). */
const MAX_ATTRIBUTES = 16;

const TRUNCATED =
  'The batch ends before its XML is complete; it was probably cut short in transit.';
const NOT_XML = 'The batch is not valid XML.';

/** XML declaration: version 1.0, optionally UTF-8 and standalone, nothing else. */
const DECLARATION =
  /^<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(["'])1\.0\1(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(["'])[Uu][Tt][Ff]-8\2)?(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(["'])(?:yes|no)\3)?[ \t\r\n]*\?>/;

/** Characters XML 1.0 does not allow anywhere in a document (surrogates cannot survive UTF-8). */
// eslint-disable-next-line no-control-regex
const FORBIDDEN_CHAR = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

function onlySpace(s: string, from: number, to: number): boolean {
  for (let k = from; k < to; k++) if (!isSpace(s.charCodeAt(k))) return false;
  return true;
}

/** The attributes of one start tag, raw (entity references not decoded). */
export function tagAttributes(tag: string): Map<string, string> | null {
  const attrs = new Map<string, string>();
  const re = /[ \t\r\n]+([^\s=/>]+)[ \t\r\n]*=[ \t\r\n]*(?:"([^"]*)"|'([^']*)')/y;
  let at = tag.search(/[\s/>]/);
  if (at === -1) return attrs;
  for (;;) {
    re.lastIndex = at;
    const m = re.exec(tag);
    if (!m) break;
    attrs.set(m[1]!, m[2] ?? m[3] ?? '');
    at = re.lastIndex;
  }
  return /^[ \t\r\n]*\/?>$/.test(tag.slice(at)) ? attrs : null;
}

export function prescan(
  xml: string,
  limits: ScanLimits,
  onRoot: (rawAttributes: Map<string, string>) => void,
): void {
  if (/<!ENTITY/i.test(xml)) refuse('The batch declares an entity; entities are refused.');
  if (/<!DOCTYPE/i.test(xml)) {
    refuse('The batch declares a document type; document types are refused.');
  }
  const bad = FORBIDDEN_CHAR.exec(xml);
  if (bad) {
    const cp = bad[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    refuse(`The batch contains a character XML does not allow (U+${cp}).`);
  }

  const n = xml.length;
  let i = 0;
  if (xml.startsWith('<?xml')) {
    const m = DECLARATION.exec(xml);
    if (!m) {
      if (xml.indexOf('?>') === -1) refuse(TRUNCATED);
      refuse("The batch's XML declaration is not XML 1.0 in UTF-8.");
    }
    i = m[0].length;
  }

  const stack: string[] = [];
  let rootSeen = false;
  let changes = 0;
  let tables = 0;
  let segments = 0;
  let origins = 0;
  let vvs = 0;
  let fxs = 0;
  const tooMany = (): never => refuse(`The batch holds more than ${limits.maxChanges} changes.`);

  for (;;) {
    const lt = xml.indexOf('<', i);
    const textEnd = lt === -1 ? n : lt;
    if (stack.length === 0 && !onlySpace(xml, i, textEnd)) {
      refuse(
        rootSeen
          ? 'The batch has content after its root element.'
          : 'The batch is not valid XML: it does not start with an element.',
      );
    }
    if (lt === -1) break;
    const next = xml.charCodeAt(lt + 1);

    if (next === 0x21 /* ! */) {
      if (xml.startsWith('<!--', lt)) {
        const end = xml.indexOf('-->', lt + 4);
        if (end === -1) refuse(TRUNCATED);
        i = end + 3;
        continue;
      }
      if (xml.startsWith('<![CDATA[', lt)) {
        refuse('The batch contains a CDATA section; the format does not use them.');
      }
      refuse(lt + 9 > n ? TRUNCATED : NOT_XML);
    }
    if (next === 0x3f /* ? */) {
      refuse(
        'The batch contains a processing instruction; only the XML declaration at the very start is allowed.',
      );
    }
    if (Number.isNaN(next)) refuse(TRUNCATED);

    if (next === 0x2f /* / */) {
      const gt = xml.indexOf('>', lt);
      if (gt === -1) refuse(TRUNCATED);
      const name = xml.slice(lt + 2, gt).trimEnd();
      const open = stack.pop();
      if (open === undefined) refuse('The batch closes an element it never opened.');
      if (name !== open)
        refuse(`The batch is not valid XML: <${open}> is closed by ${quote(name, 20)}.`);
      i = gt + 1;
      continue;
    }

    // A start tag: find its end, stepping over quoted attribute values (which may hold '>').
    let k = lt + 1;
    let gt = -1;
    let attributes = 0;
    while (k < n) {
      const c = xml.charCodeAt(k);
      if (c === 0x3e /* > */) {
        gt = k;
        break;
      }
      if (c === 0x22 || c === 0x27) {
        const close = xml.indexOf(c === 0x22 ? '"' : "'", k + 1);
        if (close === -1) refuse(TRUNCATED);
        if (++attributes > MAX_ATTRIBUTES) {
          refuse('The batch has an element with more attributes than the format defines.');
        }
        const ltInside = xml.indexOf('<', k + 1);
        if (ltInside !== -1 && ltInside < close) {
          refuse('The batch is not valid XML: an attribute value holds a raw <.');
        }
        k = close + 1;
        continue;
      }
      if (c === 0x3c /* < */) refuse(NOT_XML);
      k++;
    }
    if (gt === -1) refuse(TRUNCATED);
    const tag = xml.slice(lt, gt + 1);
    const nameEnd = tag.search(/[\s/>]/);
    const name = tag.slice(1, nameEnd);
    const parent = stack.length ? stack[stack.length - 1]! : '';
    if (parent === '' && rootSeen) refuse('The batch has more than one root element.');
    const allowed = CHILDREN.get(parent) ?? [];
    if (!allowed.includes(name)) {
      if (parent === '') {
        refuse(
          `The batch's root element is ${quote(name, 20)}, not cs: it is not a ClinicSync batch.`,
        );
      }
      if (allowed.length === 0) refuse('The batch nests elements deeper than the format allows.');
      refuse(
        `The batch has an element ${quote(name, 20)} inside <${parent}>, which the format does not allow.`,
      );
    }
    if (parent === '') {
      rootSeen = true;
      const attrs = tagAttributes(tag);
      if (!attrs) refuse('The batch is not valid XML: its root element is malformed.');
      onRoot(attrs);
    }
    if (name === 'i' || name === 'u' || name === 'd' || name === 'x') {
      if (++changes > limits.maxChanges) tooMany();
    } else if (name === 'r') {
      // every segment must hold a row (checked after parsing), so segments never outnumber rows
      if (++segments > limits.maxChanges) tooMany();
    } else if (name === 'o' || name === 'vv' || name === 'fx') {
      if (name === 'o' ? ++origins > 1 : name === 'vv' ? ++vvs > 1 : ++fxs > 1)
        refuse(`The batch has more than one <${name}>.`);
    } else if (name === 't') {
      if (++tables > limits.maxTables)
        refuse(`The batch declares more than ${limits.maxTables} tables.`);
    }
    if (xml.charCodeAt(gt - 1) !== 0x2f /* / */) stack.push(name);
    i = gt + 1;
  }
  if (stack.length) refuse(TRUNCATED);
  if (!rootSeen) refuse(xml.trim() === '' ? 'The batch is empty.' : NOT_XML);
}
