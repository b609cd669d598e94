import { describe, expect, it } from 'vitest';
import { SyncError } from '../../src/engine/errors.js';
import { fileOfComplexValue, isSafeFileName } from '../../src/engine/files/fileName.js';
import { decodeFileMessage, encodeFileMessage } from '../../src/engine/files/message.js';

const SHA = 'a'.repeat(64);

/** A message whose header is written by hand, as a hostile neighbour could. */
function raw(header: unknown, tail = Buffer.alloc(0)): Buffer {
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(h.length);
  return Buffer.concat([Buffer.from('CSF1'), len, h, tail]);
}

function refusal(body: Buffer): string {
  try {
    decodeFileMessage(body);
  } catch (e) {
    expect(e).toBeInstanceOf(SyncError);
    return (e as SyncError).message;
  }
  throw new Error('expected a refusal');
}

describe('complex obs file names', () => {
  it('reads the key of OpenMRS\'s "title|key" values', () => {
    expect(fileOfComplexValue('Chest X-ray|xray_42.png')).toBe('xray_42.png');
    expect(fileOfComplexValue('plain_key.pdf')).toBe('plain_key.pdf');
    expect(fileOfComplexValue('a|b|last.jpg')).toBe('last.jpg');
  });

  it('refuses any name that could reach outside the complex obs folder', () => {
    for (const bad of [
      '../x',
      '..',
      '.',
      '/etc/passwd',
      'C:evil',
      'a\\b',
      'sub/x',
      'x\0y',
      'x.',
      '',
    ]) {
      expect(isSafeFileName(bad), bad).toBe(false);
    }
    expect(fileOfComplexValue('title|../../etc/passwd')).toBeNull();
    expect(isSafeFileName('x'.repeat(256))).toBe(false);
  });
});

describe('file messages', () => {
  it('round-trips offers, answers and pieces', () => {
    const m = {
      offers: [{ obs: 'obs-1', name: 'f.bin', size: 3, sha256: SHA }],
      have: [{ name: 'g.bin', sha256: SHA, offset: 7, done: false }],
      chunks: [{ name: 'f.bin', sha256: SHA, offset: 0, data: Buffer.from([1, 2, 3]) }],
    };
    const back = decodeFileMessage(encodeFileMessage(m));
    expect(back.offers).toEqual(m.offers);
    expect(back.have).toEqual(m.have);
    expect(back.chunks[0]!.data).toEqual(Buffer.from([1, 2, 3]));
  });

  it('refuses hostile names, sizes, and pieces that do not add up', () => {
    const offer = (name: string, size = 1) => ({
      offers: [{ obs: 'o', name, size, sha256: SHA }],
      have: [],
      chunks: [],
    });
    expect(refusal(raw(offer('../../etc/cron.d/x')))).toMatch(/unsafe file name/);
    expect(refusal(raw(offer('/abs/path')))).toMatch(/unsafe file name/);
    expect(refusal(raw(offer('ok.bin', -1)))).toMatch(/bad size/);
    const piece = {
      offers: [],
      have: [],
      chunks: [{ name: 'a', sha256: SHA, offset: 0, length: 10 }],
    };
    expect(refusal(raw(piece, Buffer.alloc(4)))).toMatch(/cut short/);
    expect(refusal(raw(piece, Buffer.alloc(11)))).toMatch(/beyond its pieces/);
    expect(refusal(Buffer.from('not a message'))).toMatch(/is not one/);
    expect(refusal(raw({ offers: [], have: [], chunks: [], extra: 1 }))).toMatch(/wrongly/);
  });
});
