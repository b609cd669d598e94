import {
  API_OPERATIONS,
  ApiError,
  type ApiEvent,
  type ApiOperation,
  type SyncApi,
} from '../api/types.js';

type Call = Exclude<ApiOperation, 'subscribe'>;
type Calls = { [K in Call]: SyncApi[K] };

/**
 * One SyncApi for the window and the tray whatever engine stands behind it: the one this app
 * runs, the service it attached to, or none yet (setup, or an engine that could not start). When
 * the engine changes, subscribers are moved to the new one and hear its status first.
 */
export class SwitchableApi {
  private target: SyncApi | null = null;
  private why = 'ClinicSync is starting; try again in a moment.';
  private readonly subscribers = new Map<(e: ApiEvent) => void, () => void>();

  readonly api: SyncApi;

  constructor() {
    const calls = Object.fromEntries(
      API_OPERATIONS.filter((op): op is Call => op !== 'subscribe').map((op) => [
        op,
        (...args: unknown[]) => {
          const t = this.target;
          if (t === null) return Promise.reject(new ApiError('state', this.why));
          return (t[op] as (...a: unknown[]) => Promise<unknown>)(...args);
        },
      ]),
    ) as Calls;
    this.api = {
      ...calls,
      subscribe: (listener) => {
        this.subscribers.set(listener, this.target?.subscribe(listener) ?? noop);
        return () => {
          this.subscribers.get(listener)?.();
          this.subscribers.delete(listener);
        };
      },
    } satisfies SyncApi;
  }

  /** The engine behind the api from now on, or null with the sentence calls reject with. */
  use(target: SyncApi | null, why?: string): void {
    for (const stop of this.subscribers.values()) stop();
    this.target = target;
    if (why !== undefined) this.why = why;
    for (const listener of this.subscribers.keys()) {
      this.subscribers.set(listener, target?.subscribe(listener) ?? noop);
    }
  }

  get current(): SyncApi | null {
    return this.target;
  }
}

function noop(): void {}
