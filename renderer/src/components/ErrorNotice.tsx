import { useId, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { explain } from '../errors.js';

/**
 * One error in plain words: what happened and what to do next, in the window's language; the
 * engine's own sentence behind a "Details" toggle.
 */
export function ErrorNotice({
  error,
  retryAt,
  onRetry,
  heading,
}: {
  error: unknown;
  /** the next automatic attempt, already formatted ("14:40") */
  retryAt?: string | null;
  onRetry?: () => void;
  /** a title of the caller's own, above the catalogue's */
  heading?: string;
}) {
  const { t } = useTranslation();
  const [open, setOpen] = useState(false);
  const detailsId = useId();
  const e = explain(error, t, retryAt);
  return (
    <div className="notice notice-danger" role="alert" data-error-kind={e.kind}>
      {heading && <p className="notice-heading">{heading}</p>}
      <p className="notice-title">{e.title}</p>
      <p>{e.next}</p>
      <div className="notice-actions">
        {onRetry && (
          <button type="button" onClick={onRetry}>
            {t('common.retry')}
          </button>
        )}
        {e.detail && (
          <button
            type="button"
            className="link-button"
            aria-expanded={open}
            aria-controls={detailsId}
            onClick={() => setOpen(!open)}
          >
            {open ? t('common.hideDetails') : t('common.details')}
          </button>
        )}
      </div>
      {e.detail && (
        <p id={detailsId} className="notice-detail" hidden={!open}>
          {e.detail}
        </p>
      )}
    </div>
  );
}
