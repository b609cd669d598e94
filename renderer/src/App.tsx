import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ErrorNotice } from './components/ErrorNotice.js';
import { StateIcon } from './components/StateIcon.js';
import { useApi } from './context.js';
import { LANGUAGES, type Language } from './i18n/index.js';
import { ConflictsScreen } from './screens/Conflicts.js';
import { SettingsScreen } from './screens/Settings.js';
import { StatusScreen } from './screens/Status.js';
import { UsbScreen } from './screens/Usb.js';
import { Wizard } from './screens/Wizard.js';
import { STATE_TONE } from './stateView.js';
import { useEngine } from './useEngine.js';

type Screen = 'status' | 'conflicts' | 'usb' | 'settings';
const SCREENS: Screen[] = ['status', 'conflicts', 'usb', 'settings'];

/** `#/usb` and the like open that screen: the tray's "Save to USB key" loads the window so. */
function screenInHash(): Screen | null {
  const name = window.location.hash.replace(/^#\/?/, '');
  return (SCREENS as string[]).includes(name) ? (name as Screen) : null;
}

export function App({
  language,
  onLanguage,
}: {
  language: Language;
  onLanguage: (l: Language) => void;
}) {
  const { t } = useTranslation();
  const api = useApi();
  const engine = useEngine(api);
  const [screen, setScreen] = useState<Screen>(() => screenInHash() ?? 'status');
  useEffect(() => {
    const follow = () => {
      const wanted = screenInHash();
      if (wanted) setScreen(wanted);
    };
    window.addEventListener('hashchange', follow);
    return () => window.removeEventListener('hashchange', follow);
  }, []);
  const { setup, status } = engine;

  const languagePicker = (
    <label className="language-picker">
      <span className="visually-hidden">{t('settings.language')}</span>
      <select value={language} onChange={(e) => onLanguage(e.target.value as Language)}>
        {LANGUAGES.map((l) => (
          <option key={l} value={l} lang={l}>
            {t(`language.${l}`)}
          </option>
        ))}
      </select>
    </label>
  );
  const lost = !engine.connected && (
    <p className="banner" role="status">
      {t('app.lostEngine')}
    </p>
  );

  if (!setup) {
    return (
      <div className="app">
        <header className="topbar">
          <span className="brand">{t('app.title')}</span>
          {languagePicker}
        </header>
        <main id="main" className="loading">
          {engine.loadError ? (
            <ErrorNotice error={engine.loadError} onRetry={engine.retryLoad} />
          ) : (
            <p>{t('app.loading')}</p>
          )}
        </main>
      </div>
    );
  }

  if (setup.node === null || setup.progress !== null) {
    return (
      <div className="app">
        <header className="topbar">
          <span className="brand">{t('app.title')}</span>
          {languagePicker}
        </header>
        {lost}
        <Wizard setup={setup} status={status} clone={engine.clone} onFinished={engine.setSetup} />
      </div>
    );
  }

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        {t('app.skip')}
      </a>
      <header className="topbar">
        <span className="brand">
          {status && <StateIcon state={status.state} size={22} />}
          {t('app.title')}
          <span className="node-name">{setup.node.name}</span>
        </span>
        <nav aria-label={t('nav.label')}>
          <ul>
            {SCREENS.map((s) => (
              <li key={s}>
                <button
                  type="button"
                  className="nav-button"
                  aria-current={screen === s ? 'page' : undefined}
                  onClick={() => setScreen(s)}
                >
                  {t(`nav.${s}`)}
                </button>
              </li>
            ))}
          </ul>
        </nav>
        {status && (
          <span className={`topbar-state tone-${STATE_TONE[status.state]}`}>
            {t(`state.${status.state}`)}
          </span>
        )}
      </header>
      {lost}
      {!status ? (
        <main id="main" className="loading">
          <p>{t('app.loading')}</p>
        </main>
      ) : screen === 'status' ? (
        <StatusScreen status={status} onShowConflicts={() => setScreen('conflicts')} />
      ) : screen === 'conflicts' ? (
        <ConflictsScreen status={status} />
      ) : screen === 'usb' ? (
        <UsbScreen status={status} />
      ) : (
        <SettingsScreen status={status} language={language} onLanguage={onLanguage} />
      )}
    </div>
  );
}
