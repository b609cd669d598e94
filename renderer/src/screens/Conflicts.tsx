import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import type { ApiConflict, ApiStatus, ApiValue } from '../../../src/api/types.js';
import { ErrorNotice } from '../components/ErrorNotice.js';
import { useApi, useFormats } from '../context.js';
import { dataKey } from '../useEngine.js';

/*
 * Conflicts (issue "The React window", item 7): each value that lost to a concurrent change
 * (DESIGN §6), what replaced it, which clinic wrote each and when, and what a data manager can
 * do about it.
 */
export function ConflictsScreen({ status }: { status: ApiStatus }) {
  const { t } = useTranslation();
  const api = useApi();
  const f = useFormats();
  const [conflicts, setConflicts] = useState<ApiConflict[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const key = dataKey(status);
  useEffect(() => {
    let alive = true;
    api.listConflicts({ limit: 200 }).then(
      (c) => alive && setConflicts(c),
      (e: unknown) => alive && setError(e),
    );
    return () => {
      alive = false;
    };
  }, [api, key]);

  const value = (v: ApiValue | undefined) => {
    if (v === undefined || v === null || v === '') return t('conflicts.emptyValue');
    if (typeof v === 'object') return t('conflicts.bytes');
    return v;
  };
  const who = (name: string | null) => t('conflicts.by', { name: name ?? t('common.unknownNode') });

  return (
    <main id="main" className="conflicts">
      <h1>{t('conflicts.heading')}</h1>
      <p className="lead">{t('conflicts.intro')}</p>
      {error !== null && <ErrorNotice error={error} />}
      {conflicts !== null && conflicts.length === 0 && (
        <p className="notice notice-good">{t('conflicts.empty')}</p>
      )}
      {conflicts !== null && conflicts.length > 0 && (
        <div className="conflicts-layout">
          <div className="panel">
            <table className="table" data-testid="conflicts">
              <thead>
                <tr>
                  <th scope="col">{t('conflicts.what')}</th>
                  <th scope="col">{t('conflicts.kept')}</th>
                  <th scope="col">{t('conflicts.replaced')}</th>
                  <th scope="col">{t('conflicts.when')}</th>
                </tr>
              </thead>
              <tbody>
                {conflicts.map((c, i) => (
                  <tr key={`${c.table}-${c.identity}-${c.at}-${i}`}>
                    <td>
                      <strong>{c.table}</strong>
                      <div className="hint identity" title={c.identity}>
                        {c.identity}
                      </div>
                      {c.explanation && <p className="hint explanation">{c.explanation}</p>}
                    </td>
                    <td>
                      {c.columns.map((col) => (
                        <div key={col}>
                          <span className="column-name">{col}</span>:{' '}
                          <span className="kept">{value(c.winner[col])}</span>
                        </div>
                      ))}
                      <div className="hint">{who(c.winnerName)}</div>
                    </td>
                    <td>
                      {c.columns.map((col) => (
                        <div key={col}>
                          <span className="column-name">{col}</span>:{' '}
                          <del className="replaced">{value(c.loser[col])}</del>
                        </div>
                      ))}
                      <div className="hint">{who(c.loserName)}</div>
                    </td>
                    <td>{f.dateTime(c.at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <aside className="panel" aria-labelledby="choices-title">
            <h2 id="choices-title">{t('conflicts.choicesTitle')}</h2>
            <ul className="plain-list">
              <li>{t('conflicts.choiceKeep')}</li>
              <li>{t('conflicts.choiceRestore')}</li>
              <li>{t('conflicts.choiceAsk')}</li>
            </ul>
          </aside>
        </div>
      )}
    </main>
  );
}
