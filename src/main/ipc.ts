import { API_OPERATIONS, type ApiOperation, type SyncApi } from '../api/types.js';
import {
  EVENT_CHANNEL,
  SUBSCRIBE_CHANNEL,
  UNSUBSCRIBE_CHANNEL,
  operationChannel,
  type IpcReply,
} from '../preload/channels.js';
import { toErrorBody } from '../preload/bridge.js';
import type { IpcMainSeam, IpcSender } from './electronSeam.js';

export interface ApiHandlersOptions {
  ipcMain: IpcMainSeam;
  /** the engine's api: the one in this process, or the admin HTTP client of a running service */
  api: SyncApi;
  /** whether a sender may call (security.ts isTrustedSender, bound to the window) */
  trusted(sender: IpcSender): boolean;
  /** told about each refused sender */
  onRefused?(sender: IpcSender, channel: string): void;
}

const REFUSED: IpcReply = {
  ok: false,
  error: { kind: 'unauthorized', message: 'Only the ClinicSync window may use ClinicSync.' },
};

/**
 * The main process's side of the bridge: one handler per SyncApi operation, each dispatching to
 * the engine's api, and the event subscriptions. Every message's sender is checked first: anything
 * but our window's main frame on our protocol is refused and never reaches the engine.
 */
export function registerApiHandlers(opts: ApiHandlersOptions): void {
  const { ipcMain, api } = opts;
  const refuse = (sender: IpcSender, channel: string) => opts.onRefused?.(sender, channel);

  for (const op of API_OPERATIONS) {
    if (op === 'subscribe') continue;
    const channel = operationChannel(op);
    ipcMain.handle(channel, async (sender, args): Promise<IpcReply> => {
      if (!opts.trusted(sender)) {
        refuse(sender, channel);
        return REFUSED;
      }
      try {
        const fn = api[op as Exclude<ApiOperation, 'subscribe'>] as (
          ...a: unknown[]
        ) => Promise<unknown>;
        return { ok: true, value: await fn(...args) };
      } catch (e) {
        return { ok: false, error: toErrorBody(e) };
      }
    });
  }

  // Subscriptions by web contents, then by the id the preload chose.
  const subscriptions = new Map<number, Map<number, () => void>>();
  ipcMain.on(SUBSCRIBE_CHANNEL, (sender, [id]) => {
    if (!opts.trusted(sender)) return refuse(sender, SUBSCRIBE_CHANNEL);
    if (typeof id !== 'number' || !Number.isSafeInteger(id)) return;
    let mine = subscriptions.get(sender.webContentsId);
    if (!mine) {
      const created = new Map<number, () => void>();
      subscriptions.set(sender.webContentsId, created);
      // A closed or reloaded window's subscriptions end with it.
      sender.onDestroyed(() => {
        for (const stop of created.values()) stop();
        subscriptions.delete(sender.webContentsId);
      });
      mine = created;
    }
    mine.get(id)?.();
    mine.set(
      id,
      api.subscribe((e) => sender.send(EVENT_CHANNEL, id, e)),
    );
  });
  ipcMain.on(UNSUBSCRIBE_CHANNEL, (sender, [id]) => {
    if (!opts.trusted(sender)) return refuse(sender, UNSUBSCRIBE_CHANNEL);
    const mine = subscriptions.get(sender.webContentsId);
    if (typeof id !== 'number' || !mine) return;
    mine.get(id)?.();
    mine.delete(id);
  });
}
