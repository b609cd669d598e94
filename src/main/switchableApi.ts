import { switchableApi } from '../api/setupMode.js';
import { API_OPERATIONS, ApiError, type SyncApi } from '../api/types.js';

/** An api with no engine behind it: every operation rejects with this sentence. */
export function unavailableApi(why: string): SyncApi {
  const refuse = () => Promise.reject(new ApiError('state', why));
  const api = Object.fromEntries(API_OPERATIONS.map((op) => [op, refuse])) as unknown as SyncApi;
  return { ...api, subscribe: () => () => undefined };
}

/**
 * One SyncApi for the window and the tray whatever engine stands behind it: the one this app
 * runs, the service it attached to, the setup wizard's, or none (null, with the sentence calls
 * reject with). Subscribers move to each new engine and hear its status first (setupMode.ts).
 */
export class SwitchableApi {
  private readonly inner = switchableApi(
    unavailableApi('ClinicSync is starting; try again in a moment.'),
  );
  private target: SyncApi | null = null;
  readonly api: SyncApi = this.inner.api;

  use(target: SyncApi | null, why = 'ClinicSync has no engine running.'): void {
    this.target = target;
    this.inner.use(target ?? unavailableApi(why));
  }

  /** The engine behind the api now, or null. */
  get current(): SyncApi | null {
    return this.target;
  }
}
