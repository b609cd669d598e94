import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Home } from '../../src/engine/config/home.js';
import { defaultSettings, type Settings } from '../../src/engine/config/settings.js';
import { dbUrlOf } from '../../src/engine/db/url.js';
import { SyncNode } from '../../src/engine/node/node.js';
import type { TestDb } from './db.js';

export function tempHome(): Home {
  return new Home(mkdtempSync(path.join(os.tmpdir(), 'cs-home-')));
}

/** Makes `db` the root of a tree, with its home in a temporary folder. */
export async function initRoot(
  db: TestDb,
  name = 'root',
  tables?: Partial<Settings['tables']>,
): Promise<SyncNode> {
  const home = tempHome();
  const settings = defaultSettings({ db: dbUrlOf(db.target), name });
  if (tables) settings.tables = { ...settings.tables, ...tables };
  home.save(settings);
  return SyncNode.init({ db: db.target, name, settings, home });
}
