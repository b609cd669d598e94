import type { StoredValue } from '../capture/values.js';
import { quote, refuse } from './refuse.js';

/*
 * Text escaping for ClinicSync protocol v1 (docs/protocol.md, "Escaping"). Two layers:
 *
 * 1. Backslash escapes make any string safe as one field of a tab-separated value list and as an
 *    attribute: \\ \t \n \r, and \u{hex} for every character XML 1.0 cannot carry (U+0000–U+0008,
 *    U+000B, U+000C, U+000E–U+001F, U+FFFE, U+FFFF and lone surrogates). Whole-field forms: \N is
 *    NULL, \b<base64> is bytes.
 * 2. XML escaping by the serializer: & < > in text; & < " in attributes. The reader decodes XML's
 *    five predefined entities and numeric character references itself (entity processing in the
 *    parser is off), and refuses every other entity reference.
 */

/** Characters a field must not carry raw: the escapes' own triggers and what XML 1.0 forbids. */
const NEEDS_ESCAPE =
  // eslint-disable-next-line no-control-regex
  /[\\\t\n\r\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function backslash(c: string): string {
  switch (c) {
    case '\\':
      return '\\\\';
    case '\t':
      return '\\t';
    case '\n':
      return '\\n';
    case '\r':
      return '\\r';
    default:
      return `\\u{${c.charCodeAt(0).toString(16)}}`;
  }
}

const XML_TEXT = /[&<>]/g;
const XML_ATTR = /[&<"]/g;
const XML_ENTITY: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
};
const xmlEntity = (c: string): string => XML_ENTITY[c]!;

/** Backslash-escapes a string so it holds no tab, newline, backslash or XML-forbidden character. */
export function escapeField(s: string): string {
  return s.replace(NEEDS_ESCAPE, backslash);
}

/** Escapes a string for XML character data (the value lists, the origin list…). */
export function xmlText(s: string): string {
  return s.replace(XML_TEXT, xmlEntity);
}

/** Escapes a string for a double-quoted XML attribute. */
export function xmlAttr(s: string): string {
  return s.replace(XML_ATTR, xmlEntity);
}

/** One value of a value list, before XML escaping. */
export function encodeValue(v: StoredValue): string {
  if (v === null) return '\\N';
  if (typeof v === 'object') return '\\b' + Buffer.from(v.b, 'base64').toString('base64');
  return escapeField(v);
}

/** Is this an XML 1.0 Char (what a character reference may produce)? */
function isXmlChar(cp: number): boolean {
  return (
    cp === 0x9 ||
    cp === 0xa ||
    cp === 0xd ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  );
}

const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/**
 * Decodes XML's predefined entities and character references in raw text or an attribute value as
 * the parser hands it over (its entity processing is off). Any other reference is refused.
 */
export function decodeXmlRefs(raw: string, where: string): string {
  let amp = raw.indexOf('&');
  if (amp === -1) return raw;
  let out = '';
  let from = 0;
  while (amp !== -1) {
    const semi = raw.indexOf(';', amp + 1);
    const name = semi === -1 || semi - amp > 12 ? null : raw.slice(amp + 1, semi);
    let ch: string | undefined;
    if (name !== null) {
      if (Object.hasOwn(PREDEFINED, name)) ch = PREDEFINED[name];
      else {
        const m = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(name);
        if (m) {
          const cp = m[1] !== undefined ? parseInt(m[1], 16) : parseInt(m[2]!, 10);
          if (!isXmlChar(cp)) {
            refuse(`${where} has a character reference to a character XML does not allow.`);
          }
          ch = String.fromCodePoint(cp);
        }
      }
    }
    if (ch === undefined) {
      const shown = raw.slice(amp, semi === -1 ? amp + 12 : Math.min(semi + 1, amp + 24));
      refuse(`${where} has an & that is not one of XML's own references (${quote(shown)}).`);
    }
    out += raw.slice(from, amp) + ch;
    from = semi + 1;
    amp = raw.indexOf('&', from);
  }
  return out + raw.slice(from);
}

/** Undoes escapeField; refuses unknown escapes and the whole-field forms (\N, \b). */
export function unescapeField(s: string, where: string): string {
  let bs = s.indexOf('\\');
  if (bs === -1) return s;
  let out = '';
  let from = 0;
  while (bs !== -1) {
    out += s.slice(from, bs);
    const c = s[bs + 1];
    if (c === '\\') out += '\\';
    else if (c === 't') out += '\t';
    else if (c === 'n') out += '\n';
    else if (c === 'r') out += '\r';
    else if (c === 'u') {
      const m = /^\{([0-9a-fA-F]{1,6})\}/.exec(s.slice(bs + 2, bs + 10));
      const cp = m ? parseInt(m[1]!, 16) : -1;
      if (!m || cp > 0x10ffff) refuse(`${where} has a malformed \\u{…} escape.`);
      out += String.fromCodePoint(cp);
      from = bs + 2 + m[0].length;
      bs = s.indexOf('\\', from);
      continue;
    } else if (c === undefined) refuse(`${where} ends a value with a lone backslash.`);
    else refuse(`${where} has an unknown escape ${quote('\\' + c)}.`);
    from = bs + 2;
    bs = s.indexOf('\\', from);
  }
  return out + s.slice(from);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes one field of a value list (already free of XML references). */
export function decodeValue(field: string, where: string): StoredValue {
  if (field.charCodeAt(0) === 92 /* \ */) {
    const c = field[1];
    if (c === 'N') {
      if (field.length !== 2) refuse(`${where} has \\N followed by more text; NULL is \\N alone.`);
      return null;
    }
    if (c === 'b') {
      const b = field.slice(2);
      if (!BASE64.test(b) || Buffer.from(b, 'base64').toString('base64') !== b) {
        refuse(`${where} has a binary value that is not valid base64.`);
      }
      return { b };
    }
  }
  return unescapeField(field, where);
}

/** Signed base-36 rendering of a bigint: "-1ekg", "0", "z". */
export function toBase36(n: bigint): string {
  return n.toString(36);
}

/** Parses a signed base-36 integer of at most 14 digits; null when malformed. */
export function fromBase36(s: string): bigint | null {
  const m = /^(-?)([0-9a-z]{1,14})$/.exec(s);
  if (!m) return null;
  let n = 0n;
  for (const ch of m[2]!) n = n * 36n + BigInt(parseInt(ch, 36));
  return m[1] ? -n : n;
}

/*
 * Protocol v2's compact uuid: a field (or identity) that is exactly a uuid in lowercase canonical
 * form travels as \U and its 16 bytes in base64url (22 characters), 16 characters shorter and,
 * once deflated, about a sixth smaller than the hex, which gzip cannot shrink below 4 bits a digit.
 */
const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const COMPACT_UUID = /^\\U([A-Za-z0-9_-]{21}[AQgw])$/;

/** \U form of a canonical lowercase uuid, or null for any other text. */
export function compactUuid(s: string): string | null {
  if (s.length !== 36 || !CANONICAL_UUID.test(s)) return null;
  return '\\U' + Buffer.from(s.replace(/-/g, ''), 'hex').toString('base64url');
}

/** The uuid a \U field stands for; null when the field is not one; refuses a malformed one. */
export function expandUuid(field: string, where: string): string | null {
  if (field.charCodeAt(0) !== 92 /* \ */ || field[1] !== 'U') return null;
  const m = COMPACT_UUID.exec(field);
  if (!m) refuse(`${where} has a \\U uuid that is not 22 base64url characters.`);
  const hex = Buffer.from(m[1]!, 'base64url').toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** One value of a v2 value list, before XML escaping: a canonical uuid in its \U form. */
export function encodeValueV2(v: StoredValue): string {
  return (typeof v === 'string' && compactUuid(v)) || encodeValue(v);
}

/** Decodes one field of a v2 value list: v1's forms and \U. */
export function decodeValueV2(field: string, where: string): StoredValue {
  return expandUuid(field, where) ?? decodeValue(field, where);
}

/** An identity (k, ok) as v2 writes it, before XML escaping. */
export function encodeIdentV2(ident: string): string {
  return compactUuid(ident) ?? escapeField(ident);
}

/** Reads an identity written by encodeIdentV2 (already free of XML references). */
export function decodeIdentV2(text: string, where: string): string {
  return expandUuid(text, where) ?? unescapeField(text, where);
}
