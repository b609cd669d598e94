import { describe, expect, it } from 'vitest';
import {
  API_STATES,
  ApiError,
  apiErrorFrom,
  childContact,
  overallState,
  type NodeStatus,
  type StateContext,
} from '../../src/api/types.js';
import { quietStatus } from '../helpers/status.js';

const calm: StateContext = {
  syncing: false,
  syncPaused: false,
  lastErrorKind: null,
  clockWarning: null,
};

const child = (over: Partial<NodeStatus> = {}): NodeStatus =>
  quietStatus({ name: 'centre', ...over });

const root = (over: Partial<NodeStatus> = {}) =>
  child({ role: 'root', parent: null, name: 'district', ...over });

const someChild = {
  name: 'centre',
  nodeId: 'fedcba9876543210',
  lastContactAt: null,
  pendingOut: 0,
  pendingIn: 0,
};

describe('overallState: the state chosen by urgency', () => {
  it('is up to date when nothing else holds', () => {
    expect(overallState(child(), calm)).toBe('up-to-date');
    expect(overallState(root(), calm)).toBe('up-to-date');
  });

  it('needs attention for parked rows, a clock warning, or a failure retrying will not fix', () => {
    expect(overallState(child({ parked: 1 }), calm)).toBe('needs-attention');
    expect(overallState(child(), { ...calm, clockWarning: 'The clock is 3 days ahead.' })).toBe(
      'needs-attention',
    );
    for (const kind of ['protocol', 'privileges', 'state', 'config', 'database'] as const) {
      expect(overallState(child({ lastError: 'x' }), { ...calm, lastErrorKind: kind })).toBe(
        'needs-attention',
      );
    }
  });

  it("says the main server can't be reached after a network failure or an unknown one", () => {
    expect(
      overallState(child({ lastError: 'no answer' }), { ...calm, lastErrorKind: 'unreachable' }),
    ).toBe('offline');
    expect(overallState(child({ lastError: 'no answer' }), calm)).toBe('offline');
  });

  it('ranks each state above the next', () => {
    // Every condition at once, then removed one by one from the most urgent.
    const all = child({ parked: 1, lastError: 'x', pendingOut: 3 });
    const ctx: StateContext = { ...calm, syncing: true, syncPaused: true };
    expect(overallState(all, { ...ctx, lastErrorKind: 'unreachable' })).toBe('needs-attention');
    const noPark = { ...all, parked: 0 };
    expect(overallState(noPark, ctx)).toBe('offline');
    const noError = { ...noPark, lastError: null };
    expect(overallState(noError, ctx)).toBe('syncing');
    expect(overallState(noError, { ...ctx, syncing: false })).toBe('waiting');
    expect(overallState({ ...noError, pendingOut: 0 }, { ...ctx, syncing: false })).toBe('paused');
    expect(overallState({ ...noError, pendingOut: 0 }, calm)).toBe('up-to-date');
    expect(API_STATES).toEqual([
      'needs-attention',
      'offline',
      'syncing',
      'waiting',
      'paused',
      'up-to-date',
    ]);
  });

  it('waits on a child for changes either way, on a parent only when it has children', () => {
    expect(overallState(child({ pendingIn: 2 }), calm)).toBe('waiting');
    expect(overallState(child({ pendingOut: 2 }), calm)).toBe('waiting');
    expect(overallState(root({ pendingOut: 5 }), calm)).toBe('up-to-date');
    expect(overallState(root({ pendingOut: 5, children: [someChild] }), calm)).toBe('waiting');
  });

  it('never calls a root offline: it contacts nobody', () => {
    expect(overallState(root({ lastError: 'old' }), calm)).toBe('up-to-date');
  });

  it('shows paused for a user pause and for paused capture', () => {
    expect(overallState(child(), { ...calm, syncPaused: true })).toBe('paused');
    expect(overallState(child({ capturePaused: true }), calm)).toBe('paused');
  });
});

describe('childContact', () => {
  const now = Date.parse('2026-03-10T12:00:00Z');
  it('turns amber after 24 hours and red after 3 days', () => {
    expect(childContact(null, now)).toBe('never');
    expect(childContact('2026-03-10T00:00:00Z', now)).toBe('recent');
    expect(childContact('2026-03-09T11:00:00Z', now)).toBe('late');
    expect(childContact('2026-03-07T11:00:00Z', now)).toBe('silent');
  });
});

describe('ApiError', () => {
  it('travels as {kind, message} and comes back typed', () => {
    const e = new ApiError('usage', 'Pause for 2, 8 or 24 hours.');
    const back = apiErrorFrom(JSON.parse(JSON.stringify(e)), 'fallback');
    expect(back).toBeInstanceOf(ApiError);
    expect(back.toJSON()).toEqual({ kind: 'usage', message: 'Pause for 2, 8 or 24 hours.' });
    expect(apiErrorFrom({ kind: 'nonsense', message: 'x' }, 'fallback').toJSON()).toEqual({
      kind: 'internal',
      message: 'fallback',
    });
  });
});
