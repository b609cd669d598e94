import { describe, expect, it } from 'vitest';
import { fingerprintColumns } from '../../src/engine/db/schema.js';

describe('table fingerprint', () => {
  const cols = [
    { name: 'obs_id', columnType: 'int(11)' },
    { name: 'value_text', columnType: 'text' },
  ];
  it('ignores column order and integer display widths (MySQL 8 prints none)', () => {
    expect(fingerprintColumns([...cols].reverse())).toBe(fingerprintColumns(cols));
    expect(fingerprintColumns([{ name: 'obs_id', columnType: 'int' }, cols[1]!])).toBe(
      fingerprintColumns(cols),
    );
  });
  it('changes when a column is renamed or retyped', () => {
    expect(fingerprintColumns([{ name: 'obs', columnType: 'int(11)' }, cols[1]!])).not.toBe(
      fingerprintColumns(cols),
    );
    expect(fingerprintColumns([{ name: 'obs_id', columnType: 'bigint(20)' }, cols[1]!])).not.toBe(
      fingerprintColumns(cols),
    );
  });
});
