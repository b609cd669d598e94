import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  STATE_COLOURS,
  TRAY_SIZES,
  iconFiles,
  launchChromium,
  renderSvgs,
  traySvg,
} from '../../build/icons.js';
import { TRAY_STATES } from '../../src/main/trayState.js';

const ICONS = fileURLToPath(new URL('../../build/icons/', import.meta.url));

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

interface Pixels {
  /** the most common opaque colour, as #rrggbb */
  main: string;
  /** share of opaque pixels */
  opaque: number;
  /** share of opaque pixels that are near white (the sign) */
  white: number;
  /** the four corners are transparent */
  cornersClear: boolean;
}

/** Runs in the page: decodes each PNG on a canvas and sums up its pixels (see Pixels). */
const SUMMARISE = `async (sources) => {
  const out = [];
  for (const src of sources) {
    const img = new Image();
    img.src = src;
    await img.decode();
    const canvas = document.createElement('canvas');
    canvas.width = img.width;
    canvas.height = img.height;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const { data, width, height } = ctx.getImageData(0, 0, img.width, img.height);
    const counts = new Map();
    let opaque = 0;
    let white = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] < 250) continue;
      opaque++;
      const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
      if (r > 235 && g > 235 && b > 235) {
        white++;
        continue;
      }
      const hex = '#' + [r, g, b].map((v) => v.toString(16).padStart(2, '0')).join('');
      counts.set(hex, (counts.get(hex) ?? 0) + 1);
    }
    const alpha = (x, y) => data[(y * width + x) * 4 + 3];
    const corners = [alpha(0, 0), alpha(width - 1, 0), alpha(0, height - 1), alpha(width - 1, height - 1)];
    out.push({
      main: [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '',
      opaque: opaque / (width * height),
      white: opaque ? white / opaque : 0,
      cornersClear: corners.every((a) => a === 0),
    });
  }
  return out;
}`;

/** Decodes PNGs in Chromium (a canvas) and sums up their pixels. */
async function pixels(browser: Browser, pngs: Buffer[]): Promise<Pixels[]> {
  const page = await browser.newPage();
  try {
    const sources = pngs.map((p) => `data:image/png;base64,${p.toString('base64')}`);
    // Browser code as text: this project's types are Node's, not the DOM's.
    return (await page.evaluate(`(${SUMMARISE})(${JSON.stringify(sources)})`)) as Pixels[];
  } finally {
    await page.close();
  }
}

describe('the icons', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('render a tray icon per state: its own colour, a white sign, a round shape', async () => {
    const wanted = TRAY_STATES.flatMap((state) =>
      [16, 48].map((size) => ({ state, size, svg: traySvg(state) })),
    );
    const pngs = await renderSvgs(browser, wanted);
    const seen = await pixels(browser, pngs);
    wanted.forEach(({ state, size }, i) => {
      const p = seen[i]!;
      const where = `${state} at ${size} px`;
      expect(pngSize(pngs[i]!), where).toEqual({ width: size, height: size });
      expect(p.main, where).toBe(STATE_COLOURS[state]);
      expect(p.cornersClear, where).toBe(true);
      // A disc fills about π/4 of its square; the sign is a visible part of it.
      expect(p.opaque, where).toBeGreaterThan(0.6);
      expect(p.opaque, where).toBeLessThan(0.85);
      expect(p.white, where).toBeGreaterThan(0.03);
    });
    expect(new Set(Object.values(STATE_COLOURS)).size).toBe(TRAY_STATES.length);
  });

  it('are all in build/icons at the sizes trays and installers use, drawn as the code says', async () => {
    const files = iconFiles();
    expect(files.filter((f) => f.file.startsWith('tray/'))).toHaveLength(
      (TRAY_STATES.length + 1) * TRAY_SIZES.length,
    );
    const pngs = files.map((f) => fs.readFileSync(path.join(ICONS, f.file)));
    files.forEach((f, i) => {
      expect(pngSize(pngs[i]!), f.file).toEqual({ width: f.size, height: f.size });
    });
    const seen = await pixels(browser, pngs);
    files.forEach((f, i) => {
      const state = TRAY_STATES.find((s) => f.file === `tray/${s}-${f.size}.png`);
      if (state) expect(seen[i]!.main, f.file).toBe(STATE_COLOURS[state]);
    });
    // The blink's second frame is the same sign, fainter.
    const dim = files.findIndex((f) => f.file === 'tray/needs-attention-dim-48.png');
    const bright = files.findIndex((f) => f.file === 'tray/needs-attention-48.png');
    expect(seen[dim]!.main).not.toBe(seen[bright]!.main);
    expect(seen[dim]!.opaque).toBeLessThan(0.05);
    // The app icon: teal, for electron-builder (build/icon.png) and Linux menus.
    const app = files.findIndex((f) => f.file === 'app/512x512.png');
    expect(seen[app]!.main).toMatch(/^#00[6-8][0-9a-f]{3}$/);
    expect(pngSize(fs.readFileSync(path.join(ICONS, '..', 'icon.png')))).toEqual({
      width: 512,
      height: 512,
    });
  });
});
