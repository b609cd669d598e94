import type { TFunction } from 'i18next';
import {
  API_ERROR_KINDS,
  isApiErrorKind,
  type ApiErrorBody,
  type ApiErrorKind,
} from '../../src/api/types.js';

/*
 * The plain-language catalogue (Dropbox-style help for every error): each engine and API error
 * kind has a title and a next step in every language, and the engine's own sentence stays
 * behind "Details". The keys are checked by the compiler (Record over every kind) and by a test
 * (both languages hold each one).
 */

export interface Explained {
  kind: ApiErrorKind;
  /** what happened, in the window's language */
  title: string;
  /** what to do next, in the window's language */
  next: string;
  /** the engine's own sentence (English), for the Details toggle */
  detail: string;
}

type Key = `errors.${ApiErrorKind}.title`;

export const CATALOGUE: Record<ApiErrorKind, { title: Key; next: `errors.${ApiErrorKind}.next` }> =
  Object.fromEntries(
    API_ERROR_KINDS.map((k) => [k, { title: `errors.${k}.title`, next: `errors.${k}.next` }]),
  ) as Record<ApiErrorKind, { title: Key; next: `errors.${ApiErrorKind}.next` }>;

/** Anything a SyncApi call rejected with, as kind and sentence ('internal' when unknown). */
export function errorBody(e: unknown): ApiErrorBody {
  if (typeof e === 'object' && e !== null) {
    const { kind, message } = e as { kind?: unknown; message?: unknown };
    if (isApiErrorKind(kind)) return { kind, message: typeof message === 'string' ? message : '' };
    if (typeof message === 'string') return { kind: 'internal', message };
  }
  return { kind: 'internal', message: String(e) };
}

/**
 * The error in plain words. `retryAt` (formatted time of the next attempt) turns the generic
 * "will try again" of an unreachable main server into "will try again at 14:40".
 */
export function explain(e: unknown, t: TFunction, retryAt?: string | null): Explained {
  const body = errorBody(e);
  const entry = CATALOGUE[body.kind];
  const next =
    body.kind === 'unreachable' && retryAt
      ? t('errors.unreachable.nextAt', { time: retryAt })
      : t(entry.next);
  return { kind: body.kind, title: t(entry.title), next, detail: body.message };
}
