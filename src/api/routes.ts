/*
 * The admin HTTP API's routes: one per SyncApi operation, shared by the server and the client so
 * the two cannot drift (a test checks both against API_OPERATIONS). Browser-safe: no Node imports.
 *
 *   GET  /api/status                 getStatus
 *   GET  /api/children               listChildren
 *   POST /api/sync                   syncNow
 *   POST /api/pause     {hours}      pauseSync
 *   POST /api/resume                 resumeSync
 *   GET  /api/settings               getSettings
 *   PUT  /api/settings/:key {value}  updateSetting
 *   PUT  /api/openmrs {url, user, password}  setOpenmrsLogin
 *   POST /api/pairing-codes {ttlMinutes}  createPairingCode
 *   GET  /api/conflicts?limit=N      listConflicts
 *   GET  /api/history?limit=N        listHistory
 *   GET  /api/parked?limit=N         listParked
 *   POST /api/clone {parentUrl, code, dbUrl, name}  startClone
 *   GET  /api/clone                  cloneProgress
 *   GET  /api/events                 subscribe (Server-Sent Events, one JSON ApiEvent per message)
 *   GET  /api/setup                  getSetupState
 *   PUT  /api/setup/progress {…}     saveSetupProgress (null forgets it)
 *   GET  /api/setup/openmrs          detectOpenmrs
 *   POST /api/setup/database-test {dbUrl, create}  testDatabase
 *   POST /api/setup/init {dbUrl, name}  initRoot
 *   POST /api/setup/parent-check {parentUrl}  checkParent
 *   GET  /api/drives                 listDrives
 *   POST /api/transfer/files {dir}   findTransferFiles
 *   POST /api/transfer/export {dir}  exportTransfer
 *   POST /api/transfer/import {file, replyDir}  importTransfer
 */
import type { ApiErrorKind, ApiOperation } from './types.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT';

export interface Route {
  method: HttpMethod;
  /** a fixed path, or one with a single `:key` segment at the end */
  path: string;
  /** where the argument travels: nowhere, the JSON body, or the query string (limit) */
  input: 'none' | 'body' | 'query' | 'key-and-body';
}

export const ROUTES: Record<ApiOperation, Route> = {
  getStatus: { method: 'GET', path: '/api/status', input: 'none' },
  listChildren: { method: 'GET', path: '/api/children', input: 'none' },
  syncNow: { method: 'POST', path: '/api/sync', input: 'none' },
  pauseSync: { method: 'POST', path: '/api/pause', input: 'body' },
  resumeSync: { method: 'POST', path: '/api/resume', input: 'none' },
  getSettings: { method: 'GET', path: '/api/settings', input: 'none' },
  updateSetting: { method: 'PUT', path: '/api/settings/:key', input: 'key-and-body' },
  setOpenmrsLogin: { method: 'PUT', path: '/api/openmrs', input: 'body' },
  createPairingCode: { method: 'POST', path: '/api/pairing-codes', input: 'body' },
  listConflicts: { method: 'GET', path: '/api/conflicts', input: 'query' },
  listHistory: { method: 'GET', path: '/api/history', input: 'query' },
  listParked: { method: 'GET', path: '/api/parked', input: 'query' },
  startClone: { method: 'POST', path: '/api/clone', input: 'body' },
  cloneProgress: { method: 'GET', path: '/api/clone', input: 'none' },
  subscribe: { method: 'GET', path: '/api/events', input: 'none' },
  getSetupState: { method: 'GET', path: '/api/setup', input: 'none' },
  saveSetupProgress: { method: 'PUT', path: '/api/setup/progress', input: 'body' },
  detectOpenmrs: { method: 'GET', path: '/api/setup/openmrs', input: 'none' },
  testDatabase: { method: 'POST', path: '/api/setup/database-test', input: 'body' },
  initRoot: { method: 'POST', path: '/api/setup/init', input: 'body' },
  checkParent: { method: 'POST', path: '/api/setup/parent-check', input: 'body' },
  listDrives: { method: 'GET', path: '/api/drives', input: 'none' },
  findTransferFiles: { method: 'POST', path: '/api/transfer/files', input: 'body' },
  exportTransfer: { method: 'POST', path: '/api/transfer/export', input: 'body' },
  importTransfer: { method: 'POST', path: '/api/transfer/import', input: 'body' },
};

/** The HTTP status for each error kind; the JSON body's `kind` stays the authority. */
export const HTTP_STATUS: Record<ApiErrorKind, number> = {
  usage: 400,
  unauthorized: 401,
  'not-found': 404,
  state: 409,
  locked: 409,
  config: 500,
  internal: 500,
  protocol: 502,
  database: 503,
  privileges: 503,
  unreachable: 503,
};

/** For a failed response whose body is not an error object: the kind its status suggests. */
export function kindOfStatus(status: number): ApiErrorKind {
  if (status === 400 || status === 413) return 'usage';
  if (status === 401 || status === 403) return 'unauthorized';
  if (status === 404 || status === 405) return 'not-found';
  if (status === 409) return 'state';
  if (status === 502) return 'protocol';
  if (status === 503 || status === 504) return 'unreachable';
  return 'internal';
}
