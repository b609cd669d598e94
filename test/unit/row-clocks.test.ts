import { describe, expect, it } from 'vitest';
import {
  CREATED,
  clocksText,
  oneStampClocks,
  parseClocks,
  type Clocks,
} from '../../src/engine/capture/rowState.js';

/** The clocks of a row as clinicsync_row stores them: each shared stamp written once. */
describe('stored row clocks', () => {
  const stamp = '117686300951773190:9d49ab9a3877bbd5';
  const later = '117686300951999999:0123456789abcdef';

  it('writes a stamp shared by many columns once and reads every column back', () => {
    const clocks: Clocks = { [CREATED]: stamp };
    // an obs row as an insert stamps it: some 25 columns alike
    for (let i = 0; i < 25; i++) clocks[`column_${i}`] = stamp;
    clocks.value_text = later;
    clocks['^value_text'] = stamp;
    clocks['~comments'] = JSON.stringify([{ v: 'kept', c: later }]);
    const text = clocksText(clocks)!;
    expect(text.split(stamp)).toHaveLength(2);
    expect(text.length).toBeLessThan(JSON.stringify(clocks).length / 2);
    expect(parseClocks(text)).toEqual(clocks);
  });

  it('reads rows stored before stamps were shared, and stores no clocks as null', () => {
    const old = { [CREATED]: stamp, gender: later };
    expect(parseClocks(JSON.stringify(old))).toEqual(old);
    expect(clocksText({})).toBeNull();
    expect(parseClocks(null)).toEqual({});
    expect(clocksText({ gender: later })).toBe(JSON.stringify({ gender: later }));
  });

  it('gives the text around one stamp, so the server can write each row its own', () => {
    for (const cols of [['uuid', 'concept_id', 'value_numeric'], []]) {
      const { before, after } = oneStampClocks(cols);
      const clocks: Clocks = {};
      for (const c of cols) clocks[c] = stamp;
      clocks[CREATED] = stamp;
      expect(before + JSON.stringify(stamp) + after).toBe(clocksText(clocks));
      expect(parseClocks(before + JSON.stringify(later) + after)[CREATED]).toBe(later);
    }
  });
});
