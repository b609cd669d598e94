import fs from 'node:fs/promises';
import path from 'node:path';
import { APP_HOST, WINDOW_CSP } from './security.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * The handler of app://clinicsync/: the built renderer's files from `root`, each with the CSP.
 * Nothing outside `root` is reachable (no "..", no hidden files, no link that leads out), and any
 * other host answers 404. Electron's protocol.handle calls it; tests call it with plain Requests.
 */
export function appProtocolHandler(root: string): (request: Request) => Promise<Response> {
  const notFound = () =>
    new Response('Not found', {
      status: 404,
      headers: { 'content-type': 'text/plain; charset=utf-8' },
    });
  return async (request) => {
    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      return notFound();
    }
    if (url.host !== APP_HOST || (request.method !== 'GET' && request.method !== 'HEAD')) {
      return notFound();
    }
    const file = await resolveFile(root, url.pathname);
    if (file === null) return notFound();
    const body = await fs.readFile(file);
    const type = CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
    return new Response(request.method === 'HEAD' ? null : new Uint8Array(body), {
      status: 200,
      headers: {
        'content-type': type,
        'content-security-policy': WINDOW_CSP,
        'x-content-type-options': 'nosniff',
        'cache-control': 'no-cache',
      },
    });
  };
}

/** The real path of the file a URL path names under root, or null. */
async function resolveFile(root: string, pathname: string): Promise<string | null> {
  let rel: string;
  try {
    rel = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  if (rel.includes('\0') || rel.includes('\\')) return null;
  const parts = path.posix.normalize(`/${rel}`).split('/').filter(Boolean);
  if (parts.some((p) => p.startsWith('.'))) return null;
  const candidate = path.join(root, ...(parts.length ? parts : ['index.html']));
  try {
    const [realRoot, realFile] = await Promise.all([fs.realpath(root), fs.realpath(candidate)]);
    if (!realFile.startsWith(realRoot + path.sep)) return null;
    return (await fs.stat(realFile)).isFile() ? realFile : null;
  } catch {
    return null;
  }
}
