import {
  API_OPERATIONS,
  ApiError,
  apiErrorFrom,
  isApiError,
  type ApiErrorBody,
  type ApiEvent,
  type ApiOperation,
  type SyncApi,
} from '../api/types.js';
import {
  EVENT_CHANNEL,
  SUBSCRIBE_CHANNEL,
  UNSUBSCRIBE_CHANNEL,
  operationChannel,
  type IpcReply,
} from './channels.js';

/*
 * The preload's SyncApi: one function per operation, each an ipcRenderer.invoke on its own
 * channel, built from API_OPERATIONS so an operation added to the contract is bridged without
 * touching this file. The page gets these functions through contextBridge, never ipcRenderer.
 *
 * This file runs in the sandboxed preload: it imports nothing from Node, and the build bundles it
 * with the types it uses into one file.
 */

/** Electron's ipcRenderer, as the bridge uses it. */
export interface IpcRendererSeam {
  invoke(channel: string, ...args: unknown[]): Promise<unknown>;
  send(channel: string, ...args: unknown[]): void;
  /** Electron passes its event object first */
  on(channel: string, fn: (event: unknown, ...args: unknown[]) => void): void;
}

type Call = Exclude<ApiOperation, 'subscribe'>;
type Calls = { [K in Call]: SyncApi[K] };

function isReply(v: unknown): v is IpcReply {
  return typeof v === 'object' && v !== null && typeof (v as { ok?: unknown }).ok === 'boolean';
}

export function createBridgeApi(ipc: IpcRendererSeam): SyncApi {
  async function call(op: Call, args: unknown[]): Promise<unknown> {
    let reply: unknown;
    try {
      reply = await ipc.invoke(operationChannel(op), ...args);
    } catch {
      throw new ApiError('internal', `The ClinicSync app did not answer ${op}; restart it.`);
    }
    if (!isReply(reply)) throw new ApiError('internal', `The ClinicSync app answered ${op} oddly.`);
    if (reply.ok) return reply.value;
    throw apiErrorFrom(reply.error, `The ClinicSync app refused ${op}.`);
  }

  const calls = Object.fromEntries(
    API_OPERATIONS.filter((op): op is Call => op !== 'subscribe').map((op) => [
      op,
      (...args: unknown[]) => call(op, args),
    ]),
  ) as Calls;

  const listeners = new Map<number, (e: ApiEvent) => void>();
  let lastId = 0;
  ipc.on(EVENT_CHANNEL, (_event, id, e) => {
    if (typeof id === 'number') listeners.get(id)?.(e as ApiEvent);
  });

  return {
    ...calls,
    subscribe(listener) {
      const id = ++lastId;
      listeners.set(id, listener);
      ipc.send(SUBSCRIBE_CHANNEL, id);
      return () => {
        if (listeners.delete(id)) ipc.send(UNSUBSCRIBE_CHANNEL, id);
      };
    },
  } satisfies SyncApi;
}

/*
 * contextBridge copies an Error that crosses into the page as a new Error with its message only,
 * so an ApiError would lose its kind. The preload therefore exposes the api with its failures as
 * plain {kind, message} objects (which cross as they are), and the page turns them back into
 * ApiErrors with pageSyncApi (page.ts).
 */

export function toErrorBody(e: unknown): ApiErrorBody {
  if (isApiError(e)) return { kind: e.kind, message: e.message };
  return { kind: 'internal', message: e instanceof Error ? e.message : String(e) };
}

/** The api as the preload exposes it through contextBridge: failures reject with plain bodies. */
export function forContextBridge(api: SyncApi): SyncApi {
  const out: Record<string, unknown> = {};
  for (const op of API_OPERATIONS) {
    const fn = api[op] as (...args: unknown[]) => unknown;
    out[op] =
      op === 'subscribe'
        ? (...args: unknown[]) => fn(...args)
        : (...args: unknown[]) =>
            (fn(...args) as Promise<unknown>).catch((e: unknown) => {
              throw toErrorBody(e);
            });
  }
  return out as unknown as SyncApi;
}
