import { describe, expect, it } from 'vitest';
import { SyncError } from '../../src/engine/errors.js';
import type { Envelope } from '../../src/engine/protocol/types.js';
import { decodeEnvelope, encodeEnvelope } from '../../src/engine/protocol/xml.js';
import {
  compareVersions,
  decodeSoftware,
  describeShapeGap,
  encodeSoftware,
} from '../../src/engine/openmrs/versions.js';

const env = (software?: string): Envelope => ({
  version: 1,
  from: { node: 'a1b2c3d4e5f60718', incarnation: '0a1b2c3d', name: 'clinic' },
  to: 'ffee00112233aabb',
  time: '1767225600000',
  hlc: '115820000000000000',
  vv: {},
  tables: [],
  changes: [],
  more: false,
  ...(software !== undefined ? { software } : {}),
});

describe('OpenMRS versions between nodes', () => {
  it('travel in the optional sw attribute and come back as sent', () => {
    const sw = encodeSoftware({ openmrs: '2.5.x', modules: { idgen: '4.5.0', emrapi: '1.12' } });
    expect(sw).toBe('openmrs=2.5.x idgen=4.5.0 emrapi=1.12');
    for (const gzip of [false, true]) {
      const back = decodeEnvelope(encodeEnvelope(env(sw), { gzip }));
      expect(back.software).toBe(sw);
      expect(decodeSoftware(back.software!)).toEqual({
        openmrs: '2.5.x',
        modules: { idgen: '4.5.0', emrapi: '1.12' },
      });
    }
    // A batch without it is read as before.
    expect(decodeEnvelope(encodeEnvelope(env(), { gzip: false }))).not.toHaveProperty('software');
  });

  it('refuses an sw attribute that is not name=version pairs', () => {
    const xml = encodeEnvelope(env('openmrs=2.5.x'), { gzip: false })
      .toString('utf8')
      .replace('sw="openmrs=2.5.x"', 'sw="openmrs=2.5.x&lt;script"');
    expect(() => decodeEnvelope(Buffer.from(xml))).toThrow(SyncError);
    expect(() => decodeEnvelope(Buffer.from(xml))).toThrow(
      'The <cs> element has software versions (sw) that are not name=version pairs.',
    );
    expect(decodeSoftware('openmrs')).toBe('holds an entry that is not name=version');
    expect(decodeSoftware('=1.0')).toBe('holds an entry that is not name=version');
  });

  it('compares release lines as numbers, part by part', () => {
    expect(compareVersions('2.10.x', '2.9.x')).toBe(1);
    expect(compareVersions('2.2.x', '2.3.x')).toBe(-1);
    expect(compareVersions('1.12', '1.12')).toBe(0);
    expect(compareVersions('2.4.0', '2.4')).toBe(1);
  });

  it('says which side to upgrade, from each side', () => {
    const older = { openmrs: '2.2.x', modules: { idgen: '4.5.0' } };
    const newer = { openmrs: '2.3.x', modules: { idgen: '4.5.0' } };
    expect(describeShapeGap(['obs'], older, newer, { relation: 'parent', name: 'district' })).toBe(
      'The main server (district) runs OpenMRS 2.3.x; this clinic runs 2.2.x. Upgrade this clinic, then sync. Until then the obs table waits on both sides; everything else keeps flowing and nothing is lost.',
    );
    expect(describeShapeGap(['obs'], newer, older, { relation: 'child', name: 'Butaro' })).toBe(
      'Butaro runs OpenMRS 2.2.x; this server runs 2.3.x. Upgrade Butaro, then sync. Until then the obs table waits on both sides; everything else keeps flowing and nothing is lost.',
    );
    // The same OpenMRS, a module's tables at another version: the module is named.
    const oldIdgen = { openmrs: '2.3.x', modules: { idgen: '4.4.1' } };
    expect(
      describeShapeGap(['idgen_identifier_source', 'idgen_seq_id_gen'], newer, oldIdgen, {
        relation: 'child',
        name: 'Butaro',
      }),
    ).toBe(
      'Butaro runs the idgen module 4.4.1; this server runs 4.5.0. Upgrade Butaro, then sync. Until then the tables idgen_identifier_source, idgen_seq_id_gen wait on both sides; everything else keeps flowing and nothing is lost.',
    );
    // Nothing known of the other side's versions: the plain fact.
    expect(describeShapeGap(['obs'], newer, null, { relation: 'parent', name: 'district' })).toBe(
      'The obs table has different columns here than at the main server; bring both to the same OpenMRS and module versions, then sync. Until then the obs table waits on both sides; everything else keeps flowing and nothing is lost.',
    );
  });
});
