import type { MenuItemSpec } from './electronSeam.js';
import type { EngineView, StatusWords, TrayState } from './trayState.js';

/**
 * The tray menu for one moment: the status in words first, then Open, Sync now, Pause (or
 * Resume), Save to USB key, Quit. Nothing in it configures anything: settings live in the window.
 * Items that cannot act now stay visible but greyed, so the menu keeps its shape.
 */
export function trayMenu(
  view: EngineView,
  state: TrayState,
  words: StatusWords,
  keyringWarning: string | null,
): MenuItemSpec[] {
  const s = view.status;
  const engine = s !== null && view.problem === null && view.connected;
  const isChild = s?.role === 'child';
  const paused = s?.syncPaused === true;
  const items: MenuItemSpec[] = [{ kind: 'line', label: words.headline }];
  if (words.detail) items.push({ kind: 'line', label: words.detail });
  if (keyringWarning) items.push({ kind: 'line', label: `⚠ ${keyringWarning}` });
  items.push(
    { kind: 'separator' },
    { kind: 'action', action: 'open', label: 'Open ClinicSync', enabled: true },
    {
      kind: 'action',
      action: 'sync-now',
      label: 'Sync now',
      enabled: engine && isChild && !paused && state !== 'working',
    },
  );
  if (paused) {
    items.push({ kind: 'action', action: 'resume', label: 'Resume syncing', enabled: engine });
  } else {
    items.push({
      kind: 'submenu',
      label: 'Pause syncing',
      enabled: engine && isChild,
      items: [
        { kind: 'action', action: 'pause-2', label: 'For 2 hours', enabled: true },
        { kind: 'action', action: 'pause-8', label: 'For 8 hours', enabled: true },
        { kind: 'action', action: 'pause-24', label: 'For 24 hours', enabled: true },
      ],
    });
  }
  items.push(
    { kind: 'action', action: 'usb', label: 'Save to USB key…', enabled: engine },
    { kind: 'separator' },
    { kind: 'action', action: 'quit', label: 'Quit ClinicSync', enabled: true },
  );
  return items;
}
