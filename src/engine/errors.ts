/**
 * Every failure the engine reports carries a kind (for retry policy and the UI's plain-language
 * catalogue) and one sentence saying what went wrong and what to do.
 */
export type ErrorKind =
  | 'usage' // the caller asked for something malformed
  | 'config' // settings missing or invalid
  | 'database' // the database refused, or could not be reached
  | 'privileges' // the database user lacks a privilege ClinicSync needs
  | 'state' // the node is not in a state where this can be done (not initialised, already initialised…)
  | 'locked' // another engine holds this node
  | 'unreachable' // the other node could not be reached
  | 'protocol'; // the other side sent something we refuse

export class SyncError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SyncError';
  }
}

export function isSyncError(e: unknown): e is SyncError {
  return e instanceof SyncError;
}
