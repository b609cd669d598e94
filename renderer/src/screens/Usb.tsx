import { useCallback, useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import type {
  ApiStatus,
  ExportSummary,
  ImportSummary,
  RemovableDrive,
  TransferFileInfo,
} from '../../../src/api/types.js';
import { ErrorNotice } from '../components/ErrorNotice.js';
import { useApi, useFormats } from '../context.js';

/*
 * USB key (issue "The React window", item 6; the transfer itself is issue 7's): "Save to USB key"
 * lists the removable drives, "Load from USB key" finds the transfer files on them, and each
 * ends with a summary of what travelled.
 */
export function UsbScreen({ status }: { status: ApiStatus }) {
  const { t } = useTranslation();
  const api = useApi();
  const [drives, setDrives] = useState<RemovableDrive[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [looking, setLooking] = useState(false);
  // Each look reads the files on the keys again too.
  const [round, setRound] = useState(0);

  const look = useCallback(async () => {
    setLooking(true);
    setError(null);
    try {
      setDrives(await api.listDrives());
      setRound((n) => n + 1);
    } catch (e) {
      setError(e);
    } finally {
      setLooking(false);
    }
  }, [api]);
  useEffect(() => {
    void look();
  }, [look]);

  return (
    <main id="main" className="usb">
      <h1>{t('usb.heading')}</h1>
      <p className="lead">{t('usb.intro')}</p>
      <div className="actions">
        <button type="button" onClick={() => void look()} disabled={looking}>
          {t('usb.lookAgain')}
        </button>
      </div>
      {error !== null && <ErrorNotice error={error} />}
      {drives !== null && drives.length === 0 && (
        <p className="notice notice-info" data-testid="no-drives">
          {t('usb.noDrives')}
        </p>
      )}
      {drives !== null && drives.length > 0 && (
        <div className="usb-grid">
          <section className="panel" aria-labelledby="save-title">
            <h2 id="save-title">{t('usb.saveHeading')}</h2>
            {status.role === 'child' ? (
              <>
                <p className="hint">{t('usb.saveIntro')}</p>
                <ul className="plain-list">
                  {drives.map((d) => (
                    <SaveToDrive key={d.path} drive={d} onSaved={() => setRound((n) => n + 1)} />
                  ))}
                </ul>
              </>
            ) : (
              <p className="hint">{t('usb.saveRootNote')}</p>
            )}
          </section>
          <section className="panel" aria-labelledby="load-title">
            <h2 id="load-title">{t('usb.loadHeading')}</h2>
            <p className="hint">{t('usb.loadIntro')}</p>
            {drives.map((d) => (
              <FilesOnDrive key={`${d.path}-${round}`} drive={d} />
            ))}
          </section>
        </div>
      )}
    </main>
  );
}

function DriveLabel({ drive }: { drive: RemovableDrive }) {
  const { t } = useTranslation();
  const f = useFormats();
  return (
    <span className="drive">
      <strong>{drive.label}</strong>{' '}
      <span className="hint">
        {drive.freeBytes !== null && drive.sizeBytes !== null
          ? t('usb.free', { free: f.bytes(drive.freeBytes), size: f.bytes(drive.sizeBytes) })
          : drive.path}
        {!drive.writable && ` · ${t('usb.readOnly')}`}
      </span>
    </span>
  );
}

function SaveToDrive({ drive, onSaved }: { drive: RemovableDrive; onSaved: () => void }) {
  const { t } = useTranslation();
  const api = useApi();
  const f = useFormats();
  const [busy, setBusy] = useState(false);
  const [summary, setSummary] = useState<ExportSummary | null>(null);
  const [error, setError] = useState<unknown>(null);
  const save = async () => {
    setBusy(true);
    setError(null);
    setSummary(null);
    try {
      setSummary(await api.exportTransfer({ dir: drive.path }));
      onSaved();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <li>
      <DriveLabel drive={drive} />
      <div className="actions">
        <button
          type="button"
          className="primary"
          disabled={busy || !drive.writable}
          onClick={() => void save()}
        >
          {busy ? t('usb.saving') : t('usb.saveTo', { label: drive.label })}
        </button>
      </div>
      <div aria-live="polite">
        {summary && (
          <div className="notice notice-good" data-testid="export-summary">
            <p className="notice-title">
              {t('usb.saved', {
                count: summary.sent,
                to: summary.to,
                size: f.bytes(summary.bytes),
              })}
            </p>
            {!summary.complete && <p>{t('usb.savedIncomplete')}</p>}
            <p className="notice-detail">{t('usb.savedFile', { file: summary.file })}</p>
          </div>
        )}
        {error !== null && <ErrorNotice error={error} />}
      </div>
    </li>
  );
}

function FilesOnDrive({ drive }: { drive: RemovableDrive }) {
  const { t } = useTranslation();
  const api = useApi();
  const f = useFormats();
  const [files, setFiles] = useState<TransferFileInfo[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState<string | null>(null);
  const [result, setResult] = useState<{ file: string; summary: ImportSummary } | null>(null);
  const [loadError, setLoadError] = useState<{ file: string; error: unknown } | null>(null);

  const find = useCallback(async () => {
    try {
      setFiles(await api.findTransferFiles({ dir: drive.path }));
    } catch (e) {
      setError(e);
    }
  }, [api, drive.path]);
  useEffect(() => {
    void find();
  }, [find]);

  const load = async (file: string) => {
    setLoading(file);
    setResult(null);
    setLoadError(null);
    try {
      setResult({ file, summary: await api.importTransfer({ file }) });
      await find();
    } catch (e) {
      setLoadError({ file, error: e });
    } finally {
      setLoading(null);
    }
  };

  const useText = (file: TransferFileInfo) =>
    file.use === 'carry'
      ? t('usb.use.carry', { to: file.to?.name ?? t('common.unknownNode') })
      : t(`usb.use.${file.use}`);

  return (
    <div className="drive-files">
      <h3>{t('usb.filesOn', { label: drive.label })}</h3>
      {error !== null && <ErrorNotice error={error} />}
      {files !== null && files.length === 0 && <p className="hint">{t('usb.noFiles')}</p>}
      {files !== null && files.length > 0 && (
        <ul className="plain-list" data-testid="transfer-files">
          {files.map((file) => (
            <li key={file.path} data-use={file.use}>
              <span className={`pill ${file.use === 'load' ? 'tone-info' : 'tone-muted'}`}>
                {useText(file)}
              </span>{' '}
              {file.from && file.to && file.createdAt ? (
                <span>
                  {t('usb.fileFromTo', {
                    from: file.from.name,
                    to: file.to.name,
                    time: f.dateTime(file.createdAt),
                  })}
                </span>
              ) : (
                <span className="hint">{file.name}</span>
              )}
              {file.use === 'load' && (
                <button
                  type="button"
                  className="primary"
                  disabled={loading !== null}
                  onClick={() => void load(file.path)}
                >
                  {loading === file.path ? t('usb.loading') : t('usb.load')}
                </button>
              )}
              <div aria-live="polite">
                {result?.file === file.path && <ImportResult summary={result.summary} />}
                {loadError?.file === file.path && <ErrorNotice error={loadError.error} />}
              </div>
            </li>
          ))}
        </ul>
      )}
      {result && !files?.some((x) => x.path === result.file) && (
        <ImportResult summary={result.summary} />
      )}
    </div>
  );
}

function ImportResult({ summary }: { summary: ImportSummary }) {
  const { t } = useTranslation();
  return (
    <div className="notice notice-good" data-testid="import-summary">
      <p className="notice-title">{t('usb.loaded', { from: summary.from })}</p>
      <ul className="summary-list">
        <li>{t('usb.summaryReceived', { count: summary.received })}</li>
        <li>{t('usb.summaryAlready', { count: summary.alreadyThere })}</li>
        {summary.parked > 0 && <li>{t('usb.summaryParked', { count: summary.parked })}</li>}
      </ul>
      {summary.replyFile && (
        <>
          <p>{t('usb.summarySent', { count: summary.sent })}</p>
          {!summary.replyComplete && <p>{t('usb.summaryReplyIncomplete')}</p>}
          <p className="notice-detail">{t('usb.summaryReplyFile', { file: summary.replyFile })}</p>
        </>
      )}
    </div>
  );
}
