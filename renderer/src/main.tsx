import { StrictMode, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { I18nextProvider } from 'react-i18next';
import { connectApi } from './api.js';
import { App } from './App.js';
import { ApiProvider } from './context.js';
import {
  createI18n,
  initialLanguage,
  rememberLanguage,
  storedLanguage,
  type Language,
} from './i18n/index.js';
import './styles.css';

const api = connectApi();
const first = initialLanguage(location.search, storedLanguage(), navigator.language);
const i18n = createI18n(first);
document.documentElement.lang = first;

function Root() {
  const [language, setLanguage] = useState<Language>(first);
  const choose = (l: Language) => {
    void i18n.changeLanguage(l);
    rememberLanguage(l);
    document.documentElement.lang = l;
    setLanguage(l);
  };
  return (
    <I18nextProvider i18n={i18n}>
      <ApiProvider api={api}>
        <App language={language} onLanguage={choose} />
      </ApiProvider>
    </I18nextProvider>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <Root />
  </StrictMode>,
);
