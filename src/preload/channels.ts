import type { ApiErrorBody, ApiOperation } from '../api/types.js';

/*
 * The IPC channels between the preload bridge and the main process: one per SyncApi operation
 * (ipcRenderer.invoke), and three for events. Only the preload and src/main/ipc.ts use them; the
 * page never sees raw IPC.
 */

export const CHANNEL_PREFIX = 'clinic-sync:';

export function operationChannel(op: ApiOperation): string {
  return `${CHANNEL_PREFIX}${op}`;
}

/** renderer → main: start a subscription under an id the preload chose */
export const SUBSCRIBE_CHANNEL = `${CHANNEL_PREFIX}events:subscribe`;
/** renderer → main: end one */
export const UNSUBSCRIBE_CHANNEL = `${CHANNEL_PREFIX}events:unsubscribe`;
/** main → renderer: (id, event) */
export const EVENT_CHANNEL = `${CHANNEL_PREFIX}events:event`;

/**
 * What every operation's invoke resolves to. Electron keeps only the message of an error thrown
 * in a handler, so failures travel as values, with their kind.
 */
export type IpcReply = { ok: true; value: unknown } | { ok: false; error: ApiErrorBody };
