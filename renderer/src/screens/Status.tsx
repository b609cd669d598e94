import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import type {
  ApiChild,
  ApiConflict,
  ApiExchange,
  ApiParked,
  ApiStatus,
} from '../../../src/api/types.js';
import { childContact } from '../../../src/api/types.js';
import { ErrorNotice } from '../components/ErrorNotice.js';
import { HistoryChart } from '../components/HistoryChart.js';
import { StateIcon } from '../components/StateIcon.js';
import { useApi, useFormats } from '../context.js';
import { CONTACT_TONE, STATE_TONE } from '../stateView.js';
import { dataKey } from '../useEngine.js';

/*
 * The status window (issue "The React window", item 3): one overall state chosen by urgency,
 * what waits in each direction, last and next contact, what needs a person (clock, parked rows,
 * conflicts, the last failure) and the history of exchanges; on a parent, its clinics.
 */
export function StatusScreen({
  status,
  onShowConflicts,
}: {
  status: ApiStatus;
  onShowConflicts: () => void;
}) {
  const { t } = useTranslation();
  const api = useApi();
  const f = useFormats();
  const filesLine = (files: NonNullable<ApiStatus['complexObsFiles']>): string => {
    const parts = [
      ...(files.arriving
        ? [t('status.filesArriving', { count: files.arriving, size: f.bytes(files.bytesToCome) })]
        : []),
      ...(files.waitingForRecord
        ? [t('status.filesWaiting', { count: files.waitingForRecord })]
        : []),
      ...(files.sending ? [t('status.filesSending', { count: files.sending })] : []),
    ];
    return parts.length ? `${parts.join(', ')}.` : t('status.filesDone');
  };
  const [history, setHistory] = useState<ApiExchange[]>([]);
  const [parked, setParked] = useState<ApiParked[]>([]);
  const [conflicts, setConflicts] = useState<ApiConflict[]>([]);
  const [actionError, setActionError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  const key = dataKey(status);

  useEffect(() => {
    let alive = true;
    void Promise.allSettled([
      api.listHistory({ limit: 50 }),
      api.listParked({ limit: 50 }),
      api.listConflicts({ limit: 100 }),
    ]).then(([h, p, c]) => {
      if (!alive) return;
      if (h.status === 'fulfilled') setHistory(h.value);
      if (p.status === 'fulfilled') setParked(p.value);
      if (c.status === 'fulfilled') setConflicts(c.value);
    });
    return () => {
      alive = false;
    };
  }, [api, key]);

  const isChild = status.role === 'child';
  const run = async (fn: () => Promise<unknown>, after?: (v: unknown) => void) => {
    setBusy(true);
    setActionError(null);
    setDone(null);
    try {
      const v = await fn();
      after?.(v);
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
    }
  };
  const syncNow = () =>
    run(
      () => api.syncNow(),
      (v) => {
        const s = v as { sent: number; received: number };
        setDone(t('status.syncDone', { sent: f.number(s.sent), received: f.number(s.received) }));
      },
    );

  const state = status.state;
  const asOf = status.lastSuccessAt ?? status.lastContactAt;
  const retryAt = status.nextSyncAt ? f.time(status.nextSyncAt) : null;
  const lastFailure = status.lastError !== null && status.lastErrorKind !== null;

  return (
    <main id="main" className="status">
      <div className="status-grid">
        <div className="column">
          <section
            className={`state-card tone-${STATE_TONE[state]}`}
            aria-labelledby="state-title"
            data-state={state}
          >
            <StateIcon state={state} size={56} />
            <div>
              <h1 id="state-title" className="state-title">
                {t(`state.${state}`)}
              </h1>
              <p className="state-sub">
                {!asOf
                  ? t('status.neverSynced')
                  : state === 'up-to-date'
                    ? t('status.upToDateAsOf', { time: f.time(asOf) })
                    : t('status.lastSynced', { time: f.time(asOf) })}
              </p>
              <p>{t(`stateHelp.${state}`)}</p>
            </div>
          </section>

          {isChild && (
            <div className="actions">
              <button
                type="button"
                className="primary"
                onClick={() => void syncNow()}
                disabled={busy || status.syncing || status.syncPaused}
              >
                {busy || status.syncing ? t('status.syncing') : t('status.syncNow')}
              </button>
              {status.syncPaused ? (
                <button type="button" onClick={() => void run(() => api.resumeSync())}>
                  {t('status.resume')}
                </button>
              ) : (
                <PauseMenu onPause={(hours) => void run(() => api.pauseSync({ hours }))} />
              )}
            </div>
          )}
          {status.syncPaused && (
            <p className="hint">
              {status.syncPausedUntil
                ? t('status.pausedUntil', { time: f.time(status.syncPausedUntil) })
                : t('status.pausedIndefinitely')}
            </p>
          )}
          <div aria-live="polite">
            {done && <p className="notice notice-good">{done}</p>}
            {actionError !== null && (
              <ErrorNotice error={actionError} retryAt={retryAt} onRetry={() => void syncNow()} />
            )}
          </div>

          <ul className="waiting">
            <li data-testid="pending-out" className={status.pendingOut ? 'has' : ''}>
              {isChild
                ? t('status.toSend', { count: status.pendingOut })
                : t('status.toFetch', { count: status.pendingOut })}
            </li>
            {isChild && (
              <li data-testid="pending-in" className={status.pendingIn ? 'has' : ''}>
                {t('status.toReceive', { count: status.pendingIn })}
              </li>
            )}
          </ul>

          <dl className="facts">
            <div>
              <dt>{isChild ? t('status.lastContact') : t('status.lastContactChildren')}</dt>
              <dd>
                {status.lastContactAt
                  ? `${f.time(status.lastContactAt)} (${f.relative(status.lastContactAt)})`
                  : t('common.never')}
              </dd>
            </div>
            {isChild && (
              <div>
                <dt>{t('status.nextContact')}</dt>
                <dd>
                  {status.syncPaused
                    ? t('status.nextContactPaused')
                    : status.nextSyncAt
                      ? f.time(status.nextSyncAt)
                      : t('status.nextContactNone')}
                </dd>
              </div>
            )}
          </dl>

          {status.clockWarning && (
            <div className="notice notice-danger" role="alert" data-testid="clock-warning">
              <p className="notice-title">{t('status.clockTitle')}</p>
              <p>{t('status.clockNext')}</p>
              <p className="notice-detail">{status.clockWarning}</p>
            </div>
          )}
          {lastFailure && actionError === null && (
            <ErrorNotice
              heading={t('status.lastFailure')}
              error={{ kind: status.lastErrorKind, message: status.lastError }}
              retryAt={retryAt}
            />
          )}
          {status.schemaWarning && (
            <div className="notice notice-warning" role="status" data-testid="schema-warning">
              <p className="notice-title">{t('status.schemaTitle')}</p>
              <p className="notice-detail">{status.schemaWarning}</p>
            </div>
          )}
          {status.identifierWarning && (
            <div className="notice notice-danger" role="alert" data-testid="identifier-warning">
              <p className="notice-title">{t('status.identifierTitle')}</p>
              <p className="notice-detail">{status.identifierWarning}</p>
            </div>
          )}
          {status.capturePaused && (
            <p className="notice notice-warning">{t('status.capturePaused')}</p>
          )}
          {status.openmrsRefresh &&
            (status.openmrsRefresh.problem ? (
              <div className="notice notice-warning" data-testid="openmrs-refresh">
                <p className="notice-title">{t('status.openmrsTitle')}</p>
                <p>{t('status.openmrsNext')}</p>
                <p className="notice-detail">{status.openmrsRefresh.problem}</p>
              </div>
            ) : (
              <p className="hint" data-testid="openmrs-refresh">
                {status.openmrsRefresh.pending === 0
                  ? t('status.openmrsUpToDate')
                  : t('status.openmrsSending', { count: status.openmrsRefresh.pending })}
              </p>
            ))}
          {status.complexObsFiles && (
            <>
              <p className="hint" data-testid="files-status">
                {filesLine(status.complexObsFiles)}
              </p>
              {status.complexObsFiles.problem && (
                <div className="notice notice-warning" data-testid="files-problem">
                  <p className="notice-title">{t('status.filesTitle')}</p>
                  <p className="notice-detail">{status.complexObsFiles.problem}</p>
                </div>
              )}
            </>
          )}

          {parked.length > 0 && (
            <section className="panel" aria-labelledby="parked-title">
              <h2 id="parked-title">{t('status.parkedTitle', { count: status.parked })}</h2>
              <p className="hint">{t('status.parkedIntro')}</p>
              {status.parkedWarning && (
                <div className="notice notice-warning" data-testid="parked-warning">
                  <p className="notice-title">{t('status.parkedLong')}</p>
                  <p className="notice-detail">{status.parkedWarning}</p>
                </div>
              )}
              <ul className="plain-list" data-testid="parked">
                {parked.map((p, i) => (
                  <li key={`${p.identity}-${i}`}>
                    <strong>{p.table}</strong>{' '}
                    {p.waitingForTable
                      ? t('status.parkedWaitingFor', { table: p.waitingForTable })
                      : t('status.parkedWaitingPerson')}
                    <br />
                    <span className="hint">
                      {t('status.parkedFrom', {
                        origin: p.originName ?? t('common.unknownNode'),
                        time: f.dateTime(p.since),
                      })}
                    </span>
                    <details>
                      <summary>{t('common.details')}</summary>
                      <p className="notice-detail">{p.reason}</p>
                      <p className="notice-detail">{p.identity}</p>
                    </details>
                  </li>
                ))}
              </ul>
            </section>
          )}
          {conflicts.length > 0 && (
            <section className="panel" aria-labelledby="conflicts-title">
              <h2 id="conflicts-title">
                {t('status.conflictsTitle', { count: conflicts.length })}
              </h2>
              <button type="button" className="link-button" onClick={onShowConflicts}>
                {t('status.conflictsLink')}
              </button>
            </section>
          )}
          <p className="hint">{t('status.journal', { size: f.bytes(status.journalBytes) })}</p>
        </div>

        <div className="column">
          {!isChild && <Children status={status} />}
          <section className="panel" aria-labelledby="history-title">
            <h2 id="history-title">{t('status.historyTitle')}</h2>
            {history.length === 0 ? (
              <p className="hint">{t('status.historyEmpty')}</p>
            ) : (
              <>
                <HistoryChart history={history} />
                <HistoryTable history={history.slice(0, 8)} />
              </>
            )}
          </section>
        </div>
      </div>
    </main>
  );
}

function PauseMenu({ onPause }: { onPause: (hours: 2 | 8 | 24) => void }) {
  const { t } = useTranslation();
  return (
    <label className="inline-select">
      <span className="visually-hidden">{t('status.pause')}</span>
      <select
        value=""
        onChange={(e) => {
          const h = Number(e.target.value);
          if (h === 2 || h === 8 || h === 24) onPause(h);
        }}
      >
        <option value="" disabled>
          {t('status.pause')}
        </option>
        <option value="2">{t('status.pause2')}</option>
        <option value="8">{t('status.pause8')}</option>
        <option value="24">{t('status.pause24')}</option>
      </select>
    </label>
  );
}

function HistoryTable({ history }: { history: ApiExchange[] }) {
  const { t } = useTranslation();
  const f = useFormats();
  return (
    <table className="table" data-testid="history">
      <thead>
        <tr>
          <th scope="col">{t('status.historyWhen')}</th>
          <th scope="col" className="num">
            {t('status.historySent')}
          </th>
          <th scope="col" className="num">
            {t('status.historyReceived')}
          </th>
          <th scope="col" className="num">
            {t('status.historyBytes')}
          </th>
          <th scope="col" className="num">
            {t('status.historyTime')}
          </th>
          <th scope="col">{t('status.historyResult')}</th>
        </tr>
      </thead>
      <tbody>
        {history.map((h, i) => (
          <tr key={`${h.startedAt}-${i}`} className={h.ok ? '' : 'row-failed'}>
            <td>{f.time(h.startedAt)}</td>
            <td className="num">{f.number(h.sent)}</td>
            <td className="num">{f.number(h.received)}</td>
            <td className="num">{f.bytes(h.bytesUp + h.bytesDown)}</td>
            <td className="num">{f.seconds(h.ms / 1000)}</td>
            <td>{h.ok ? t('status.historyOk') : t('status.historyFailed')}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Children({ status }: { status: ApiStatus }) {
  const { t } = useTranslation();
  const api = useApi();
  const f = useFormats();
  const [children, setChildren] = useState<ApiChild[] | null>(null);
  const key = dataKey(status);
  useEffect(() => {
    let alive = true;
    api.listChildren().then(
      (c) => alive && setChildren(c),
      () => alive && setChildren(null),
    );
    return () => {
      alive = false;
    };
  }, [api, key]);
  // The engine's list, or the status's own while it loads.
  const list: ApiChild[] =
    children ??
    status.children.map((c) => ({ ...c, contact: childContact(c.lastContactAt, Date.now()) }));
  const contactText = {
    never: t('status.childNever'),
    recent: t('status.childRecent'),
    late: t('status.childLate'),
    silent: t('status.childSilent'),
  };
  return (
    <section className="panel" aria-labelledby="children-title">
      <h2 id="children-title">{t('status.childrenTitle')}</h2>
      {list.length === 0 ? (
        <p className="hint">{t('status.childrenEmpty')}</p>
      ) : (
        <table className="table" data-testid="children">
          <thead>
            <tr>
              <th scope="col">{t('status.childName')}</th>
              <th scope="col">{t('status.childLastContact')}</th>
              <th scope="col" className="num">
                {t('status.childWaiting')}
              </th>
            </tr>
          </thead>
          <tbody>
            {list.map((c) => (
              <tr key={c.nodeId} data-contact={c.contact}>
                <td>{c.name}</td>
                <td>
                  <span className={`pill tone-${CONTACT_TONE[c.contact]}`}>
                    {contactText[c.contact]}
                  </span>{' '}
                  {c.lastContactAt && (
                    <span className="hint">
                      {f.time(c.lastContactAt)} ({f.relative(c.lastContactAt)})
                    </span>
                  )}
                </td>
                <td className="num">{f.number(c.pendingOut)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
