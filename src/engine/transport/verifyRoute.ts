import { gunzipSync, gzipSync } from 'node:zlib';
import { z } from 'zod';
import { SyncError, isSyncError } from '../errors.js';
import {
  LocalRows,
  MAX_BUCKET_BITS,
  RowCache,
  type RowSource,
  type TableDigest,
} from '../node/verify.js';
import type { ParentClient } from './client.js';
import type { RouteHandler, RouteOptions } from './server.js';

/*
 * POST /v1/verify (issue 5, item 6): a child asks its parent the questions of a RowSource
 * (node/verify.ts) about the tables both sync, one question per request, signed like every other
 * route. Request: JSON, one of
 *
 *   {"op": "tables", "tables": [name, …]}
 *       → {"tables": {name: {"rows": n, "digest": hex}}, "alsoSynced": [name, …]}
 *   {"op": "buckets", "table": name, "bits": b, "parentBits": p, "parents": [i, …]}
 *       → {"buckets": [[i, hex], …]}        (non-empty buckets only)
 *   {"op": "rows", "table": name, "bits": b, "buckets": [i, …]}
 *       → {"rows": [[identity, hex], …]}
 *
 * Answers are gzip'd JSON (application/gzip). Nothing is written on the parent.
 */

export const VERIFY_PATH = '/v1/verify';

const MAX_REQUEST_BYTES = 1024 * 1024;
/** The most a decompressed answer may hold. */
const MAX_ANSWER_BYTES = 512 * 1024 * 1024;
/** Buckets asked for at once (the child narrows down 256 at a time). */
const MAX_BUCKETS = 1 << 16;
/** How long the parent keeps the rows of the table a child is narrowing down. */
const KEEP_ROWS_MS = 60_000;

const tableName = z.string().min(1).max(64);
const bits = z.number().int().min(0).max(MAX_BUCKET_BITS);
const bucketList = z.array(z.number().int().min(0)).max(MAX_BUCKETS);
const hex = z.string().regex(/^[0-9a-f]{1,32}$/);

const Request = z.discriminatedUnion('op', [
  z.object({ op: z.literal('tables'), tables: z.array(tableName).max(10_000) }),
  z.object({
    op: z.literal('buckets'),
    table: tableName,
    bits,
    parentBits: bits,
    parents: bucketList,
  }),
  z.object({ op: z.literal('rows'), table: tableName, bits, buckets: bucketList }),
]);
type Request = z.infer<typeof Request>;

const TablesAnswer = z.object({
  tables: z.record(z.string(), z.object({ rows: z.number().int().min(0), digest: hex })),
  alsoSynced: z.array(z.string()),
});
const BucketsAnswer = z.object({ buckets: z.array(z.tuple([z.number().int().min(0), hex])) });
const RowsAnswer = z.object({ rows: z.array(z.tuple([z.string(), hex])) });

/** The route for the transport server: `extraRoutes: { [VERIFY_PATH]: verifyRoute() }`. */
export function verifyRoute(): { handler: RouteHandler; options: RouteOptions } {
  // A child narrowing a table down asks about it several times: read it once. A new comparison
  // (its first question) starts afresh, so a second verify never sees the rows of the first.
  const cache = new RowCache(KEEP_ROWS_MS);
  return {
    options: { maxBodyBytes: MAX_REQUEST_BYTES },
    handler: async (req) => {
      const ask = parseRequest(req.body);
      if (ask.op === 'tables') cache.clear();
      const rows = await LocalRows.of(req.node, cache);
      if (ask.op !== 'tables' && !rows.syncs(ask.table)) {
        throw new SyncError('usage', `The table ${ask.table} is not synced on this server.`);
      }
      let answer: unknown;
      switch (ask.op) {
        case 'tables': {
          const r = await rows.tables(ask.tables);
          answer = { tables: Object.fromEntries(r.tables), alsoSynced: r.alsoSynced };
          break;
        }
        case 'buckets': {
          if (ask.parentBits >= ask.bits || ask.parents.some((p) => p >= 2 ** ask.parentBits)) {
            throw new SyncError('usage', 'The buckets asked for do not exist.');
          }
          const b = await rows.buckets(ask.table, ask.bits, ask.parentBits, ask.parents);
          answer = { buckets: [...b] };
          break;
        }
        case 'rows': {
          if (ask.buckets.some((b) => b >= 2 ** ask.bits)) {
            throw new SyncError('usage', 'The buckets asked for do not exist.');
          }
          answer = { rows: [...(await rows.rows(ask.table, ask.bits, ask.buckets))] };
          break;
        }
      }
      return {
        contentType: 'application/gzip',
        body: gzipSync(Buffer.from(JSON.stringify(answer), 'utf8')),
      };
    },
  };
}

function parseRequest(body: Buffer): Request {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    v = null;
  }
  const r = Request.safeParse(v);
  if (!r.success) throw new SyncError('usage', 'The verify request could not be read.');
  return r.data;
}

/** The parent's rows, asked over the network through its verify route. */
export function parentRows(client: ParentClient): RowSource {
  const ask = async <T>(request: Request, schema: z.ZodType<T>): Promise<T> => {
    let body: Buffer;
    try {
      const res = await client.post(VERIFY_PATH, JSON.stringify(request), {
        contentType: 'application/json',
      });
      body = await res.buffer();
    } catch (e) {
      // A parent that runs an older ClinicSync has no such route.
      if (
        isSyncError(e) &&
        e.kind === 'protocol' &&
        /no such ClinicSync endpoint/.test(e.message)
      ) {
        throw new SyncError(
          'protocol',
          `The main server at ${client.url} cannot compare rows: it runs an older ClinicSync. Upgrade it, then try again.`,
          { cause: e },
        );
      }
      throw e;
    }
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(gunzipSync(body, { maxOutputLength: MAX_ANSWER_BYTES }).toString('utf8'));
    } catch {
      // reported below
    }
    const r = schema.safeParse(parsed);
    if (!r.success) {
      throw new SyncError(
        'protocol',
        `The main server's answer to verify could not be read; nothing was compared.`,
      );
    }
    return r.data;
  };
  return {
    async tables(names) {
      const a = await ask({ op: 'tables', tables: names }, TablesAnswer);
      return {
        tables: new Map<string, TableDigest>(Object.entries(a.tables)),
        alsoSynced: a.alsoSynced,
      };
    },
    async buckets(table, b, parentBits, parents) {
      const a = await ask({ op: 'buckets', table, bits: b, parentBits, parents }, BucketsAnswer);
      return new Map(a.buckets);
    },
    async rows(table, b, buckets) {
      const a = await ask({ op: 'rows', table, bits: b, buckets }, RowsAnswer);
      return new Map(a.rows);
    },
  };
}
