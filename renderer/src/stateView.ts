import type { ApiState, ChildContact } from '../../src/api/types.js';

/*
 * How each overall state looks: its colour family (the CSS classes in styles.css) and icon.
 * The state itself is chosen by the engine side (overallState in src/api/types.ts), most urgent
 * first; the window shows the one it is given.
 */
export type Tone = 'danger' | 'warning' | 'busy' | 'info' | 'muted' | 'good';

export const STATE_TONE: Record<ApiState, Tone> = {
  'needs-attention': 'danger',
  offline: 'warning',
  syncing: 'busy',
  waiting: 'info',
  paused: 'muted',
  'up-to-date': 'good',
};

export const CONTACT_TONE: Record<ChildContact, Tone> = {
  never: 'muted',
  recent: 'good',
  late: 'warning',
  silent: 'danger',
};
