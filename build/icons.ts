/*
 * Draws ClinicSync's icons as SVG and renders them to PNG with Chromium (playwright-core and
 * Debian's /usr/bin/chromium): the app icon, and a tray icon for each state at the sizes Linux and
 * Windows trays use. Run `npx tsx build/icons.ts` after changing a drawing, and commit the PNGs.
 *
 * Each state has its own colour and its own shape, so it reads at 16 pixels and without colour.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { TRAY_STATES, type TrayState } from '../src/main/trayState.js';

/** Trays: Windows 16 (24, 32, 48 when scaled), Linux panels 22 or 24. */
export const TRAY_SIZES = [16, 22, 24, 32, 48] as const;
/** The app icon: the installers and Linux menus take what they need from these. */
export const APP_SIZES = [16, 32, 48, 64, 128, 256, 512] as const;

/** Each state's colour, chosen to stay apart for the colour-blind too (shapes differ as well). */
export const STATE_COLOURS: Record<TrayState, string> = {
  'up-to-date': '#2e7d32',
  working: '#1565c0',
  waiting: '#d97706',
  offline: '#616161',
  paused: '#5e35b1',
  'needs-attention': '#c62828',
};

const white = (width = 7) =>
  `stroke="#ffffff" stroke-width="${width}" stroke-linecap="round" stroke-linejoin="round" fill="none"`;
const WHITE = white();

/** The white sign on each state's disc, in a 64-unit square. */
const SIGNS: Record<TrayState, string> = {
  // a check mark
  'up-to-date': `<path d="M18 33 L28 43 L47 22" ${WHITE}/>`,
  // two arrows chasing each other round
  working: [
    `<path d="M19 29 A14 14 0 0 1 42 21" ${WHITE}/>`,
    '<path d="M46 12 L47 27 L33 24 Z" fill="#ffffff"/>',
    `<path d="M45 35 A14 14 0 0 1 22 43" ${WHITE}/>`,
    '<path d="M18 52 L17 37 L31 40 Z" fill="#ffffff"/>',
  ].join(''),
  // a clock: changes wait for the next sync
  waiting: `<circle cx="32" cy="32" r="16" ${white(6)}/><path d="M32 23 V32 L39 37" ${white(6)}/>`,
  // a line cut in two: no link to the main server
  offline: `<path d="M13 32 H25 M39 32 H51 M27 24 L25 40 M39 24 L37 40" ${white(6)}/>`,
  // two bars
  paused:
    '<rect x="21" y="19" width="8" height="26" rx="2" fill="#ffffff"/><rect x="35" y="19" width="8" height="26" rx="2" fill="#ffffff"/>',
  // an exclamation mark
  'needs-attention':
    '<rect x="28" y="13" width="8" height="26" rx="4" fill="#ffffff"/><circle cx="32" cy="48" r="5" fill="#ffffff"/>',
};

/** A tray icon: a disc in the state's colour with its sign; `dim` is the blink's second frame. */
export function traySvg(state: TrayState, dim = false): string {
  return [
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">',
    `<g opacity="${dim ? 0.45 : 1}">`,
    `<circle cx="32" cy="32" r="30" fill="${STATE_COLOURS[state]}"/>`,
    SIGNS[state],
    '</g></svg>',
  ].join('');
}

/** The app icon: a white cross of care inside two arrows of sync, on teal. */
export function appSvg(): string {
  const arrow = 'stroke="#ffffff" stroke-width="26" stroke-linecap="round" fill="none"';
  return [
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512">',
    '<defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1">',
    '<stop offset="0" stop-color="#00897b"/><stop offset="1" stop-color="#00695c"/>',
    '</linearGradient></defs>',
    '<rect x="16" y="16" width="480" height="480" rx="108" fill="url(#g)"/>',
    `<path d="M118 222 A142 142 0 0 1 352 140" ${arrow}/>`,
    '<path d="M386 92 L392 196 L296 170 Z" fill="#ffffff"/>',
    `<path d="M394 290 A142 142 0 0 1 160 372" ${arrow}/>`,
    '<path d="M126 420 L120 316 L216 342 Z" fill="#ffffff"/>',
    '<path d="M226 176 H286 V226 H336 V286 H286 V336 H226 V286 H176 V226 H226 Z" fill="#ffffff"/>',
    '</svg>',
  ].join('');
}

export interface IconFile {
  /** path under the output folder, like tray/working-16.png */
  file: string;
  size: number;
  svg: string;
}

/** Every PNG the build needs, with its drawing. */
export function iconFiles(): IconFile[] {
  const files: IconFile[] = [];
  for (const state of TRAY_STATES) {
    for (const size of TRAY_SIZES) {
      files.push({ file: `tray/${state}-${size}.png`, size, svg: traySvg(state) });
    }
  }
  for (const size of TRAY_SIZES) {
    files.push({
      file: `tray/needs-attention-dim-${size}.png`,
      size,
      svg: traySvg('needs-attention', true),
    });
  }
  for (const size of APP_SIZES) {
    files.push({ file: `app/${size}x${size}.png`, size, svg: appSvg() });
  }
  return files;
}

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking'];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** Renders SVGs to PNGs of size × size pixels with a transparent background, on one page. */
export async function renderSvgs(
  browser: Browser,
  icons: readonly { svg: string; size: number }[],
): Promise<Buffer[]> {
  const page = await browser.newPage();
  try {
    const out: Buffer[] = [];
    for (const { svg, size } of icons) {
      await page.setViewportSize({ width: size, height: size });
      const src = `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`;
      await page.setContent(
        `<!doctype html><style>html,body{margin:0;background:transparent}img{display:block}</style><img src="${src}" width="${size}" height="${size}">`,
      );
      // Browser code as text: this project's types are Node's, not the DOM's.
      await page.evaluate('document.querySelector("img").decode()');
      out.push(
        await page.screenshot({
          omitBackground: true,
          clip: { x: 0, y: 0, width: size, height: size },
        }),
      );
    }
    return out;
  } finally {
    await page.close();
  }
}

/** Writes every icon under outDir (build/icons), and build/icon.png for electron-builder. */
export async function renderIcons(outDir: string): Promise<string[]> {
  const browser = await launchChromium();
  const written: string[] = [];
  try {
    const icons = iconFiles();
    const pngs = await renderSvgs(browser, icons);
    icons.forEach((icon, i) => {
      const file = path.join(outDir, icon.file);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, pngs[i]!);
      written.push(file);
    });
  } finally {
    await browser.close();
  }
  return written;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const written = await renderIcons(path.join(here, 'icons'));
  fs.copyFileSync(path.join(here, 'icons', 'app', '512x512.png'), path.join(here, 'icon.png'));
  process.stdout.write(`Wrote ${written.length} icons and build/icon.png.\n`);
}
