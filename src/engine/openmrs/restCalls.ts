import { request } from 'undici';

/*
 * The two REST resources of OpenMRS's webservices.rest module (OpenMRS 2.0 and later) that make a
 * running OpenMRS see rows written into its database behind its back:
 *   POST {base}/ws/rest/v1/cleardbcache       evicts entities from Hibernate's caches
 *   POST {base}/ws/rest/v1/searchindexupdate  updates its Lucene search index
 * Both take {"resource", "subResource", "uuid"}: one entity by uuid, every entity of the resource's
 * type without uuid, everything with an empty body; both answer 204 No Content.
 */

export type RefreshKind = 'cache' | 'index';

/** One refresh OpenMRS is asked for; empty strings leave a part out. */
export interface RefreshCall {
  what: RefreshKind;
  resource: string;
  subResource: string;
  uuid: string;
}

export interface OpenmrsAccess {
  /** OpenMRS's address, like http://localhost:8080/openmrs */
  url: string;
  user: string;
  password: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

export type CallOutcome =
  | { ok: true }
  /** OpenMRS did not take the call at all (down, refused the login, too old): retry later */
  | { ok: false; entryFault: false; reason: string }
  /** OpenMRS answered but could not do this one refresh (say, an entity it cannot find) */
  | { ok: false; entryFault: true; reason: string };

const PATHS: Record<RefreshKind, string> = {
  cache: 'ws/rest/v1/cleardbcache',
  index: 'ws/rest/v1/searchindexupdate',
};

/** The request body for a call: only the parts given; nothing at all for a whole refresh. */
export function requestBody(call: RefreshCall): string {
  if (call.resource === '') return '';
  const body: Record<string, string> = { resource: call.resource };
  if (call.subResource !== '') body.subResource = call.subResource;
  if (call.uuid !== '') body.uuid = call.uuid;
  return JSON.stringify(body);
}

export async function callOpenmrs(access: OpenmrsAccess, call: RefreshCall): Promise<CallOutcome> {
  const base = access.url.endsWith('/') ? access.url : `${access.url}/`;
  const url = new URL(PATHS[call.what], base);
  const body = requestBody(call);
  const auth = Buffer.from(`${access.user}:${access.password}`, 'utf8').toString('base64');
  let status: number;
  try {
    const res = await request(url, {
      method: 'POST',
      headers: {
        authorization: `Basic ${auth}`,
        accept: 'application/json',
        ...(body === '' ? {} : { 'content-type': 'application/json' }),
      },
      body: body === '' ? undefined : body,
      headersTimeout: access.timeoutMs,
      bodyTimeout: access.timeoutMs,
      signal: access.signal,
    });
    status = res.statusCode;
    await res.body.dump();
  } catch (e) {
    return { ok: false, entryFault: false, reason: `no answer: ${networkReason(e)}` };
  }
  if (status >= 200 && status < 300) return { ok: true };
  if (status === 401 || status === 403) {
    return {
      ok: false,
      entryFault: false,
      reason: `it refused the user "${access.user}" (answer ${status}); check the OpenMRS user and its password, and that the user may manage the system`,
    };
  }
  if (status === 404) {
    return {
      ok: false,
      entryFault: false,
      reason: `it has no ${PATHS[call.what].split('/').pop()} service (answer 404); it needs OpenMRS 2.0 or newer with the REST Web Services module, and the address must end in OpenMRS's own path, like /openmrs`,
    };
  }
  if (status === 429 || status === 502 || status === 503 || status === 504) {
    return { ok: false, entryFault: false, reason: `it is busy or starting (answer ${status})` };
  }
  return { ok: false, entryFault: true, reason: `it answered ${status}` };
}

function networkReason(e: unknown): string {
  const err = e as { code?: string; message?: string; name?: string };
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'nothing listens at that address (is OpenMRS running?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the address cannot be found';
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
      return 'the connection was cut (has OpenMRS stopped?)';
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'it did not answer in time';
    default:
      return err.name === 'AbortError' ? 'stopped' : (err.message ?? String(e));
  }
}
