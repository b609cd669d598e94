import { createContext, useContext, useMemo, type ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import type { SyncApi } from '../../src/api/types.js';
import { formats, type Formats } from './format.js';
import { LOCALES, isLanguage } from './i18n/index.js';

const ApiContext = createContext<SyncApi | null>(null);

export function ApiProvider({ api, children }: { api: SyncApi; children: ReactNode }) {
  return <ApiContext.Provider value={api}>{children}</ApiContext.Provider>;
}

/** The SyncApi this window talks to. */
export function useApi(): SyncApi {
  const api = useContext(ApiContext);
  if (!api) throw new Error('useApi needs an ApiProvider');
  return api;
}

/** Intl formats in the window's current language. */
export function useFormats(): Formats {
  const { t, i18n } = useTranslation();
  const language = isLanguage(i18n.language) ? i18n.language : 'en';
  return useMemo(() => formats(LOCALES[language], t), [language, t]);
}
