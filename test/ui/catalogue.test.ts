import fs from 'node:fs';
import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { I18nextProvider } from 'react-i18next';
import { describe, expect, it } from 'vitest';
import { API_ERROR_KINDS, type ApiErrorKind } from '../../src/api/types.js';
import { OPENMRS_LEFT_OUT } from '../../src/engine/capture/tableFilter.js';
import { ErrorNotice } from '../../renderer/src/components/ErrorNotice.js';
import { CATALOGUE, explain } from '../../renderer/src/errors.js';
import { en } from '../../renderer/src/i18n/en.js';
import { fr } from '../../renderer/src/i18n/fr.js';
import { LANGUAGES, createI18n } from '../../renderer/src/i18n/index.js';
import { PRESET_LEFT_OUT } from '../../renderer/src/presetReasons.js';

/*
 * The plain-language catalogue (issue "The React window", item 4): every engine and API error
 * kind has a title and a next step in English and in French, and the window shows them with the
 * engine's own sentence behind "Details".
 */

/** The engine's error kinds, read from the engine's own source (its ErrorKind union). */
function engineKinds(): string[] {
  const text = fs.readFileSync(new URL('../../src/engine/errors.ts', import.meta.url), 'utf8');
  const union = /export type ErrorKind =([^;]+);/.exec(text)?.[1] ?? '';
  return [...union.matchAll(/'([a-z-]+)'/g)].map((m) => m[1]!);
}

describe('the error catalogue', () => {
  it('covers every engine error kind and every kind of the API', () => {
    const kinds = engineKinds();
    expect(kinds.length).toBeGreaterThanOrEqual(8);
    for (const k of kinds) expect(API_ERROR_KINDS).toContain(k);
    expect(Object.keys(CATALOGUE).sort()).toEqual([...API_ERROR_KINDS].sort());
  });

  for (const language of LANGUAGES) {
    it(`has a title and a next step for every kind in ${language}`, () => {
      const t = createI18n(language).t;
      const other = createI18n(language === 'en' ? 'fr' : 'en').t;
      const titles = new Set<string>();
      for (const kind of API_ERROR_KINDS) {
        const e = explain({ kind, message: `engine sentence for ${kind}` }, t);
        expect(e.kind).toBe(kind);
        // A real sentence, not a key left untranslated, and not the other language's.
        expect(e.title).not.toMatch(/^errors\./);
        expect(e.next).not.toMatch(/^errors\./);
        expect(e.title.length).toBeGreaterThan(10);
        expect(e.next.length).toBeGreaterThan(10);
        expect(e.title).not.toBe(explain({ kind, message: '' }, other).title);
        expect(e.detail).toBe(`engine sentence for ${kind}`);
        titles.add(e.title);
      }
      expect(titles.size).toBe(API_ERROR_KINDS.length);
    });
  }

  it('says when the main server will be tried again, in each language', () => {
    const unreachable = { kind: 'unreachable' as ApiErrorKind, message: 'no answer' };
    expect(explain(unreachable, createI18n('en').t, '14:40').next).toBe(
      'Check the internet connection. ClinicSync will try again at 14:40.',
    );
    expect(explain(unreachable, createI18n('fr').t, '14:40').next).toBe(
      'Vérifiez la connexion Internet. ClinicSync réessaiera à 14:40.',
    );
  });

  it('turns anything a call rejects with into a kind: unknown ones are internal', () => {
    const t = createI18n('en').t;
    expect(explain(new Error('boom'), t)).toMatchObject({ kind: 'internal', detail: 'boom' });
    expect(explain({ kind: 'no-such', message: 'x' }, t).kind).toBe('internal');
    expect(explain('text', t)).toMatchObject({ kind: 'internal', detail: 'text' });
  });

  it('renders the sentence and next step, with the detail behind a Details toggle', () => {
    for (const language of LANGUAGES) {
      const i18n = createI18n(language);
      const html = renderToStaticMarkup(
        createElement(
          I18nextProvider,
          { i18n },
          createElement(ErrorNotice, {
            error: { kind: 'database', message: 'No database server answers at 127.0.0.1:3306.' },
          }),
        ),
      );
      expect(html).toContain('role="alert"');
      expect(html).toContain('data-error-kind="database"');
      expect(html).toContain(escape(i18n.t('errors.database.title')));
      expect(html).toContain(escape(i18n.t('errors.database.next')));
      expect(html).toContain(`>${escape(i18n.t('common.details'))}</button>`);
      expect(html).toContain('aria-expanded="false"');
      // The engine's sentence is there for the toggle, hidden until asked for.
      expect(html).toMatch(/<p id="[^"]+" class="notice-detail" hidden="">No database server/);
    }
  });
});

describe('the translations', () => {
  it('have the same keys in English and French, none empty', () => {
    expect(keys(fr)).toEqual(keys(en));
    for (const [k, v] of leaves(fr)) expect(v.trim(), k).not.toBe('');
  });

  it('count in the words and digits of each language', () => {
    const en_ = createI18n('en').t;
    const fr_ = createI18n('fr').t;
    expect(en_('status.toSend', { count: 0 })).toBe('Nothing waiting to be sent');
    expect(en_('status.toSend', { count: 1 })).toBe('1 change waiting to be sent');
    expect(en_('status.toSend', { count: 12345 })).toBe('12,345 changes waiting to be sent');
    expect(fr_('status.toSend', { count: 1 })).toBe('1 modification en attente d’envoi');
    expect(fr_('status.toSend', { count: 12345 })).toMatch(
      /^12\s345 modifications en attente d’envoi$/u,
    );
  });

  it('explain every table the OpenMRS choice leaves out, in both languages', () => {
    expect(PRESET_LEFT_OUT).toHaveLength(OPENMRS_LEFT_OUT.length);
    const normal = (s: string) => s.toLowerCase().replace(/\.$/, '');
    for (const rule of OPENMRS_LEFT_OUT) {
      const match = PRESET_LEFT_OUT.find(
        (p) => normal(en.settings.presetReasons[p.key]) === normal(rule.reason),
      );
      expect(match, `no reason shown for ${rule.pattern}`).toBeDefined();
      // The tables named beside the reason are the ones the rule leaves out.
      for (const table of match!.tables.split(/,\s*/)) {
        if (!table.endsWith('…')) expect(table).toMatch(rule.pattern);
      }
    }
  });
});

function escape(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#x27;');
}

function leaves(o: object, prefix = ''): [string, string][] {
  return Object.entries(o).flatMap(([k, v]) =>
    typeof v === 'string'
      ? [[`${prefix}${k}`, v] as [string, string]]
      : leaves(v as object, `${prefix}${k}.`),
  );
}

function keys(o: object): string[] {
  return leaves(o)
    .map(([k]) => k)
    .sort();
}
