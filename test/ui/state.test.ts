import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { I18nextProvider } from 'react-i18next';
import { describe, expect, it } from 'vitest';
import {
  API_OPERATIONS,
  API_STATES,
  childContact,
  overallState,
  type ApiState,
  type ApiStatus,
  type NodeStatus,
  type StateContext,
  type SyncApi,
} from '../../src/api/types.js';
import { ApiProvider } from '../../renderer/src/context.js';
import { LANGUAGES, createI18n } from '../../renderer/src/i18n/index.js';
import { StatusScreen } from '../../renderer/src/screens/Status.js';
import { formats } from '../../renderer/src/format.js';
import { STATE_TONE } from '../../renderer/src/stateView.js';
import { quietStatus } from '../helpers/status.js';

/*
 * The one overall state, chosen by urgency (issue "The React window", item 3): Needs attention ›
 * Can't reach the main server › Sending/receiving › Changes waiting › Paused › Up to date; and
 * the status screen showing it in words, in each language.
 */

const NOW = Date.parse('2026-11-26T14:32:00Z');
const HOUR = 3_600_000;

const node = (over: Partial<NodeStatus> = {}): NodeStatus =>
  quietStatus({
    lastSuccessAt: new Date(Date.now() - 60_000).toISOString(),
    journalBytes: 4096,
    ...over,
  });

const calm: StateContext = {
  syncing: false,
  syncPaused: false,
  lastErrorKind: null,
  clockWarning: null,
};

describe('the overall state, chosen by urgency', () => {
  const cases: [string, Partial<NodeStatus>, Partial<StateContext>, ApiState][] = [
    ['nothing to do', {}, {}, 'up-to-date'],
    ['paused by the user', {}, { syncPaused: true }, 'paused'],
    ['capture paused for an upgrade', { capturePaused: true }, {}, 'paused'],
    ['changes to send, even while paused', { pendingOut: 3 }, { syncPaused: true }, 'waiting'],
    ['changes to receive', { pendingIn: 2 }, {}, 'waiting'],
    ['an exchange running beats waiting', { pendingOut: 3 }, { syncing: true }, 'syncing'],
    [
      'the main server unreachable beats an exchange running',
      { lastError: 'no answer', pendingOut: 3 },
      { syncing: true, lastErrorKind: 'unreachable' },
      'offline',
    ],
    [
      'a failure whose kind was lost on restart counts as unreachable',
      { lastError: 'no answer' },
      {},
      'offline',
    ],
    [
      'parked rows beat the main server unreachable',
      { lastError: 'no answer', parked: 1 },
      { lastErrorKind: 'unreachable' },
      'needs-attention',
    ],
    [
      'a clock warning needs a person',
      {},
      { clockWarning: 'This computer is 3 hours ahead.' },
      'needs-attention',
    ],
    [
      'a failure waiting will not fix needs a person',
      { lastError: 'refused' },
      { lastErrorKind: 'privileges' },
      'needs-attention',
    ],
    [
      'a main server with no clinics has nobody to wait for',
      { role: 'root', parent: null, pendingOut: 5 },
      {},
      'up-to-date',
    ],
    [
      'a main server with a clinic that has not fetched',
      {
        role: 'root',
        parent: null,
        pendingOut: 5,
        children: [{ name: 'c', nodeId: 'n', lastContactAt: null, pendingOut: 5, pendingIn: 0 }],
      },
      {},
      'waiting',
    ],
  ];
  for (const [why, status, context, expected] of cases) {
    it(`${expected}: ${why}`, () => {
      expect(overallState(node(status), { ...calm, ...context })).toBe(expected);
    });
  }

  it('lists the states most urgent first, each with a look of its own', () => {
    expect(API_STATES).toEqual([
      'needs-attention',
      'offline',
      'syncing',
      'waiting',
      'paused',
      'up-to-date',
    ]);
    expect(new Set(Object.values(STATE_TONE)).size).toBe(API_STATES.length);
  });

  it('colours a clinic amber after 24 hours without contact and red after 3 days', () => {
    const ago = (h: number) => new Date(NOW - h * HOUR).toISOString();
    expect(childContact(null, NOW)).toBe('never');
    expect(childContact(ago(23), NOW)).toBe('recent');
    expect(childContact(ago(25), NOW)).toBe('late');
    expect(childContact(ago(71), NOW)).toBe('late');
    expect(childContact(ago(73), NOW)).toBe('silent');
  });
});

/** An api that is never called: the server render runs no effects. */
const idleApi = Object.fromEntries(
  API_OPERATIONS.map((op) => [op, () => Promise.reject(new Error(`${op} called`))]),
) as unknown as SyncApi;

function renderStatus(status: ApiStatus, language: (typeof LANGUAGES)[number]): string {
  const i18n = createI18n(language);
  return renderToStaticMarkup(
    createElement(
      I18nextProvider,
      { i18n },
      createElement(ApiProvider, {
        api: idleApi,
        children: createElement(StatusScreen, { status, onShowConflicts: () => undefined }),
      }),
    ),
  );
}

function apiStatus(base: NodeStatus, context: StateContext): ApiStatus {
  return {
    ...base,
    state: overallState(base, context),
    lastContactAt: base.lastSuccessAt,
    nextSyncAt: null,
    syncing: context.syncing,
    syncPaused: context.syncPaused,
    syncPausedUntil: null,
    lastErrorKind: context.lastErrorKind,
    clockWarning: context.clockWarning,
  };
}

describe('the status screen', () => {
  for (const language of LANGUAGES) {
    it(`shows the chosen state in words in ${language}, with what waits each way`, () => {
      const t = createI18n(language).t;
      const waiting = renderStatus(
        apiStatus(node({ pendingOut: 12, pendingIn: 3 }), calm),
        language,
      );
      expect(waiting).toContain('data-state="waiting"');
      expect(waiting).toContain(html(t('state.waiting')));
      expect(waiting).toContain(html(t('status.toSend', { count: 12 })));
      expect(waiting).toContain(html(t('status.toReceive', { count: 3 })));

      const offline = renderStatus(
        apiStatus(node({ lastError: 'The main server did not answer.', parked: 0 }), {
          ...calm,
          lastErrorKind: 'unreachable',
        }),
        language,
      );
      expect(offline).toContain('data-state="offline"');
      expect(offline).toContain(html(t('state.offline')));
      expect(offline).toContain(html(t('errors.unreachable.title')));

      const attention = renderStatus(
        apiStatus(node({ parked: 2, lastError: 'x' }), {
          ...calm,
          lastErrorKind: 'unreachable',
          clockWarning: 'The clock of Butaro is 3 hours ahead.',
        }),
        language,
      );
      expect(attention).toContain('data-state="needs-attention"');
      expect(attention).toContain(html(t('status.clockTitle')));

      const upToDate = renderStatus(apiStatus(node(), calm), language);
      expect(upToDate).toContain('data-state="up-to-date"');
      expect(upToDate).toContain(html(t('state.up-to-date')));
      expect(upToDate).toMatch(new RegExp(t('status.upToDateAsOf', { time: '\\d\\d:\\d\\d' })));
    });
  }

  for (const language of LANGUAGES) {
    it(`says in ${language} whether the clinic's OpenMRS has been told what arrived`, () => {
      const t = createI18n(language).t;
      const url = 'http://localhost:8080/openmrs';
      const none = renderStatus(apiStatus(node(), calm), language);
      expect(none).not.toContain('data-testid="openmrs-refresh"');
      const done = renderStatus(
        apiStatus(node({ openmrsRefresh: { url, pending: 0, problem: null } }), calm),
        language,
      );
      expect(done).toContain(html(t('status.openmrsUpToDate')));
      const sending = renderStatus(
        apiStatus(node({ openmrsRefresh: { url, pending: 4, problem: null } }), calm),
        language,
      );
      expect(sending).toContain(html(t('status.openmrsSending', { count: 4 })));
      const problem = `OpenMRS at ${url} could not be refreshed (it is busy or starting (answer 503)).`;
      const away = renderStatus(
        apiStatus(node({ openmrsRefresh: { url, pending: 4, problem } }), calm),
        language,
      );
      expect(away).toContain(html(t('status.openmrsTitle')));
      expect(away).toContain(html(t('status.openmrsNext')));
      expect(away).toContain(html(problem));
    });
  }

  for (const language of LANGUAGES) {
    it(`says in ${language} how the attached files are getting on`, () => {
      const t = createI18n(language).t;
      const files = { arriving: 0, bytesToCome: 0, waitingForRecord: 0, sending: 0, problem: null };
      expect(renderStatus(apiStatus(node(), calm), language)).not.toContain(
        'data-testid="files-status"',
      );
      const settled = renderStatus(apiStatus(node({ complexObsFiles: files }), calm), language);
      expect(settled).toContain(html(t('status.filesDone')));
      const moving = renderStatus(
        apiStatus(
          node({ complexObsFiles: { ...files, arriving: 2, bytesToCome: 3_500_000, sending: 1 } }),
          calm,
        ),
        language,
      );
      expect(moving).toContain(
        html(t('status.filesArriving', { count: 2, size: formats(language, t).bytes(3_500_000) })),
      );
      expect(moving).toContain(html(t('status.filesSending', { count: 1 })));
      expect(moving).not.toContain(html(t('status.filesDone')));
      const problem =
        '1 attached file from another computer was not taken because it is larger than the limit of 50 MB (setting complexObs.maxFileMegabytes): huge.bin.';
      const refused = renderStatus(
        apiStatus(node({ complexObsFiles: { ...files, problem } }), calm),
        language,
      );
      expect(refused).toContain(html(t('status.filesTitle')));
      expect(refused).toContain(html(problem));
    });
  }

  it("shows a main server's clinics by how recently they were in contact", () => {
    const ago = (h: number) => new Date(Date.now() - h * HOUR).toISOString();
    const children = [
      { name: 'Rwinkwavu', nodeId: 'a', lastContactAt: ago(1), pendingOut: 0, pendingIn: 0 },
      { name: 'Kirehe', nodeId: 'b', lastContactAt: ago(30), pendingOut: 4, pendingIn: 0 },
      { name: 'Nyarabuye', nodeId: 'c', lastContactAt: ago(80), pendingOut: 9, pendingIn: 0 },
    ];
    const html = renderStatus(
      apiStatus(node({ role: 'root', parent: null, children, pendingOut: 9 }), calm),
      'en',
    );
    expect(html).toMatch(/data-contact="recent"><td>Rwinkwavu/);
    expect(html).toMatch(
      /data-contact="late"><td>Kirehe<\/td><td><span class="pill tone-warning">No contact for more than 24 hours/,
    );
    expect(html).toMatch(
      /data-contact="silent"><td>Nyarabuye<\/td><td><span class="pill tone-danger">No contact for more than 3 days/,
    );
  });
});

/** Text as React writes it into markup. */
function html(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#x27;');
}
