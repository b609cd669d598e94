import { useEffect, useState } from 'react';
import type { ApiStatus, CloneProgress, SetupState, SyncApi } from '../../src/api/types.js';

export interface Engine {
  /** null until the first answer */
  setup: SetupState | null;
  setSetup(s: SetupState): void;
  /** the node's status; null in setup mode or before the first one */
  status: ApiStatus | null;
  setStatus(s: ApiStatus): void;
  /** the running or last clone's progress */
  clone: CloneProgress | null;
  /** false while the event stream is lost */
  connected: boolean;
  /** why the first answer failed */
  loadError: unknown;
  retryLoad(): void;
}

/** How often the status is read again: a nurse's edit in OpenMRS makes no event. */
const POLL_MS = 5_000;

/** The engine as the window follows it: setup state, status, clone progress, connection. */
export function useEngine(api: SyncApi): Engine {
  const [setup, setSetup] = useState<SetupState | null>(null);
  const [status, setStatus] = useState<ApiStatus | null>(null);
  const [clone, setClone] = useState<CloneProgress | null>(null);
  const [connected, setConnected] = useState(true);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let alive = true;
    api.getSetupState().then(
      (s) => {
        if (!alive) return;
        setLoadError(null);
        setSetup(s);
        if (s.clone) setClone(s.clone);
      },
      (e: unknown) => alive && setLoadError(e),
    );
    const stop = api.subscribe((e) => {
      if (!alive) return;
      switch (e.type) {
        case 'status':
          setStatus(e.status);
          break;
        case 'setup':
          setSetup(e.state);
          if (e.state.clone) setClone(e.state.clone);
          break;
        case 'clone-progress':
          setClone(e.progress);
          break;
        case 'connection':
          setConnected(e.connected);
          break;
        default:
          break;
      }
    });
    return () => {
      alive = false;
      stop();
    };
  }, [api, attempt]);

  const hasNode = setup?.node != null;
  useEffect(() => {
    if (!hasNode) return;
    let alive = true;
    const read = () =>
      api.getStatus().then(
        (s) => alive && setStatus(s),
        () => undefined,
      );
    read();
    const id = setInterval(read, POLL_MS);
    return () => {
      alive = false;
      clearInterval(id);
    };
  }, [api, hasNode]);

  return {
    setup,
    setSetup,
    status,
    setStatus,
    clone,
    connected,
    loadError,
    retryLoad: () => setAttempt((n) => n + 1),
  };
}

/** A key that changes when the lists behind the status (history, parked, conflicts) may have. */
export function dataKey(s: ApiStatus | null): string {
  if (!s) return '';
  return [s.lastSuccessAt, s.lastError, s.parked, s.pendingOut, s.pendingIn, s.syncing].join('|');
}
