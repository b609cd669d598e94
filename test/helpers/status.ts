import type { NodeStatus } from '../../src/engine/node/types.js';

/** A NodeStatus as the engine reports it for a quiet clinic, with `over` in place of its fields. */
export function quietStatus(over: Partial<NodeStatus> = {}): NodeStatus {
  return {
    name: 'Butaro',
    role: 'child',
    parent: 'http://district:8750',
    pendingOut: 0,
    pendingIn: 0,
    parked: 0,
    parkedWarning: null,
    children: [],
    lastSuccessAt: null,
    lastError: null,
    clockWarning: null,
    schemaWarning: null,
    identifierWarning: null,
    journalBytes: 0,
    capturePaused: false,
    nodeId: '0123456789abcdef',
    incarnation: '01234567',
    ...over,
  };
}
