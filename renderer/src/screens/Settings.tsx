import { useEffect, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import type { ApiStatus, Settings } from '../../../src/api/types.js';
import { ErrorNotice } from '../components/ErrorNotice.js';
import { useApi } from '../context.js';
import { LANGUAGES, type Language } from '../i18n/index.js';
import { PRESET_LEFT_OUT } from '../presetReasons.js';
import { PairingCodes } from './Wizard.js';

/*
 * Settings (issue "The React window", item 5): the sync limits, which data is synced with the
 * OpenMRS choice's reasons, the OpenMRS to refresh, the window's language, and pairing codes.
 * Each group is saved through updateSetting (the OpenMRS login through setOpenmrsLogin, which
 * keeps the password as a secret); both validate every value with the shared settings schema.
 */
export function SettingsScreen({
  status,
  language,
  onLanguage,
}: {
  status: ApiStatus;
  language: Language;
  onLanguage: (l: Language) => void;
}) {
  const { t } = useTranslation();
  const api = useApi();
  const [settings, setSettings] = useState<Settings | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    api.getSettings().then(setSettings, setError);
  }, [api]);

  return (
    <main id="main" className="settings">
      <h1>{t('settings.heading')}</h1>
      {error !== null && <ErrorNotice error={error} />}
      <div className="settings-grid">
        <div className="column">
          <section className="panel" aria-labelledby="language-title">
            <h2 id="language-title">{t('settings.languageHeading')}</h2>
            <div className="field">
              <label htmlFor="language">{t('settings.language')}</label>
              <select
                id="language"
                value={language}
                onChange={(e) => onLanguage(e.target.value as Language)}
              >
                {LANGUAGES.map((l) => (
                  <option key={l} value={l} lang={l}>
                    {t(`language.${l}`)}
                  </option>
                ))}
              </select>
            </div>
          </section>
          {settings && status.role === 'child' && (
            <SyncSettings settings={settings} onSaved={setSettings} />
          )}
          {settings && <About settings={settings} />}
        </div>
        <div className="column">
          {settings && <DataSettings settings={settings} onSaved={setSettings} />}
          {settings && <OpenmrsSettings settings={settings} onSaved={setSettings} />}
          <section className="panel" aria-labelledby="pairing-title">
            <h2 id="pairing-title">{t('settings.pairingHeading')}</h2>
            <p className="hint">{t('settings.pairingIntro')}</p>
            <PairingCodes ready />
          </section>
        </div>
      </div>
    </main>
  );
}

/**
 * A group's saving: `run` makes one call that returns the new settings, `save` changes several
 * settings one after the other and stops at the first the engine refuses. Both say true when saved.
 */
function useSaver(onSaved: (s: Settings) => void) {
  const api = useApi();
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  const run = async (action: () => Promise<Settings | null>): Promise<boolean> => {
    setBusy(true);
    setError(null);
    setSaved(false);
    try {
      const last = await action();
      if (last) onSaved(last);
      setSaved(true);
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  };
  const save = (changes: [string, string][]) =>
    run(async () => {
      let last: Settings | null = null;
      for (const [key, value] of changes) last = await api.updateSetting(key, value);
      return last;
    });
  return { run, save, error, saved, busy };
}

/** A group's Save button, the word that it saved, or why not. */
function SaveActions({ busy, saved, error }: { busy: boolean; saved: boolean; error: unknown }) {
  const { t } = useTranslation();
  return (
    <>
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          {t('common.save')}
        </button>
        <span aria-live="polite" className="hint">
          {saved ? t('common.saved') : ''}
        </span>
      </div>
      {error !== null && <ErrorNotice error={error} />}
    </>
  );
}

function SyncSettings({
  settings,
  onSaved,
}: {
  settings: Settings;
  onSaved: (s: Settings) => void;
}) {
  const { t } = useTranslation();
  const { save, error, saved, busy } = useSaver(onSaved);
  const [minutes, setMinutes] = useState(String(settings.sync.intervalSeconds / 60));
  const [timeout, setTimeoutValue] = useState(String(settings.sync.timeoutSeconds));
  const [retries, setRetries] = useState(String(settings.sync.retries));
  const [compression, setCompression] = useState(settings.sync.compression);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const seconds = Math.round(Number(minutes.replace(',', '.')) * 60);
    void save([
      ['sync.intervalSeconds', Number.isFinite(seconds) ? String(seconds) : minutes],
      ['sync.timeoutSeconds', timeout],
      ['sync.retries', retries],
      ['sync.compression', String(compression)],
    ]);
  };
  return (
    <section className="panel" aria-labelledby="sync-title">
      <h2 id="sync-title">{t('settings.syncHeading')}</h2>
      <form onSubmit={submit}>
        <div className="field">
          <label htmlFor="interval-minutes">{t('settings.interval')}</label>
          <div className="with-unit">
            <input
              id="interval-minutes"
              inputMode="decimal"
              value={minutes}
              aria-describedby="interval-help"
              onChange={(e) => setMinutes(e.target.value)}
            />
            <span>{t('settings.minutes')}</span>
          </div>
          <p className="help" id="interval-help">
            {t('settings.intervalHelp')}
          </p>
        </div>
        <div className="field">
          <label htmlFor="timeout">{t('settings.timeout')}</label>
          <div className="with-unit">
            <input
              id="timeout"
              inputMode="numeric"
              value={timeout}
              onChange={(e) => setTimeoutValue(e.target.value)}
            />
            <span>{t('settings.seconds')}</span>
          </div>
        </div>
        <div className="field">
          <label htmlFor="retries">{t('settings.retries')}</label>
          <div className="with-unit">
            <input
              id="retries"
              inputMode="numeric"
              value={retries}
              onChange={(e) => setRetries(e.target.value)}
            />
          </div>
        </div>
        <label className="check">
          <input
            type="checkbox"
            checked={compression}
            onChange={(e) => setCompression(e.target.checked)}
          />
          {t('settings.compression')}
        </label>
        <SaveActions busy={busy} saved={saved} error={error} />
      </form>
    </section>
  );
}

/** The OpenMRS to refresh: its address, a user, and that user's password (kept as a secret). */
function OpenmrsSettings({
  settings,
  onSaved,
}: {
  settings: Settings;
  onSaved: (s: Settings) => void;
}) {
  const { t } = useTranslation();
  const api = useApi();
  const [url, setUrl] = useState(settings.openmrs.url);
  const [user, setUser] = useState(settings.openmrs.user);
  const [password, setPassword] = useState('');
  const { run, error, saved, busy } = useSaver(onSaved);
  // The engine accepts an address only with a password, so one is saved while an address is.
  const passwordSaved = settings.openmrs.url !== '';
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const login = { url, user, password: password === '' ? null : password };
    if (await run(() => api.setOpenmrsLogin(login))) setPassword('');
  };
  return (
    <section className="panel" aria-labelledby="openmrs-title">
      <h2 id="openmrs-title">{t('settings.openmrsHeading')}</h2>
      <p className="hint">{t('settings.openmrsIntro')}</p>
      <form onSubmit={(e) => void submit(e)}>
        <div className="field">
          <label htmlFor="openmrs-url">{t('settings.openmrsUrl')}</label>
          <input
            id="openmrs-url"
            inputMode="url"
            placeholder="http://localhost:8080/openmrs"
            value={url}
            onChange={(e) => setUrl(e.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor="openmrs-user">{t('settings.openmrsUser')}</label>
          <input
            id="openmrs-user"
            autoComplete="off"
            value={user}
            onChange={(e) => setUser(e.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor="openmrs-password">{t('settings.openmrsPassword')}</label>
          <input
            id="openmrs-password"
            type="password"
            autoComplete="new-password"
            aria-describedby={passwordSaved ? 'openmrs-password-help' : undefined}
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
          {passwordSaved && (
            <p className="help" id="openmrs-password-help">
              {t('settings.openmrsPasswordKept')}
            </p>
          )}
        </div>
        <SaveActions busy={busy} saved={saved} error={error} />
      </form>
    </section>
  );
}

function DataSettings({
  settings,
  onSaved,
}: {
  settings: Settings;
  onSaved: (s: Settings) => void;
}) {
  const { t } = useTranslation();
  const { save, error, saved, busy } = useSaver(onSaved);
  const [preset, setPreset] = useState(settings.tables.preset);
  const [exclude, setExclude] = useState(settings.tables.exclude.join(', '));
  const [include, setInclude] = useState(settings.tables.include.join(', '));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void save([
      ['tables.preset', preset],
      ['tables.exclude', exclude],
      ['tables.include', include],
    ]);
  };
  return (
    <section className="panel" aria-labelledby="data-title">
      <h2 id="data-title">{t('settings.dataHeading')}</h2>
      <form onSubmit={submit}>
        <fieldset>
          <legend className="visually-hidden">{t('settings.dataHeading')}</legend>
          <label className="check">
            <input
              type="radio"
              name="preset"
              value="openmrs"
              checked={preset === 'openmrs'}
              onChange={() => setPreset('openmrs')}
            />
            {t('settings.presetOpenmrs')}
          </label>
          <label className="check">
            <input
              type="radio"
              name="preset"
              value="all"
              checked={preset === 'all'}
              onChange={() => setPreset('all')}
            />
            {t('settings.presetAll')}
          </label>
        </fieldset>
        <details className="reasons" open={preset === 'openmrs'}>
          <summary>{t('settings.presetReasonsTitle')}</summary>
          <dl>
            {PRESET_LEFT_OUT.map((r) => (
              <div key={r.key}>
                <dt>
                  <code>{r.tables}</code>
                </dt>
                <dd>{t(`settings.presetReasons.${r.key}`)}</dd>
              </div>
            ))}
          </dl>
        </details>
        <div className="field">
          <label htmlFor="exclude">{t('settings.exclude')}</label>
          <input
            id="exclude"
            value={exclude}
            spellCheck={false}
            aria-describedby="tables-help"
            onChange={(e) => setExclude(e.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor="include">{t('settings.include')}</label>
          <input
            id="include"
            value={include}
            spellCheck={false}
            aria-describedby="tables-help"
            onChange={(e) => setInclude(e.target.value)}
          />
          <p className="help" id="tables-help">
            {t('settings.tablesHelp')} {t('settings.tablesNote')}
          </p>
        </div>
        <SaveActions busy={busy} saved={saved} error={error} />
      </form>
    </section>
  );
}

function About({ settings }: { settings: Settings }) {
  const { t } = useTranslation();
  return (
    <section className="panel" aria-labelledby="about-title">
      <h2 id="about-title">{t('settings.aboutHeading')}</h2>
      <dl className="facts compact">
        <div>
          <dt>{t('settings.name')}</dt>
          <dd>{settings.name}</dd>
        </div>
        <div>
          <dt>{t('settings.role')}</dt>
          <dd>
            {settings.role === 'root'
              ? t('status.roleRoot')
              : t('status.roleChild', { parent: settings.parent ?? '' })}
          </dd>
        </div>
        <div>
          <dt>{t('settings.database')}</dt>
          <dd>
            <code>{settings.db}</code>
          </dd>
        </div>
      </dl>
    </section>
  );
}
