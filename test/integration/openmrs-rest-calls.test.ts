import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { callOpenmrs, requestBody } from '../../src/engine/openmrs/restCalls.js';
import { OpenmrsStandIn } from '../helpers/openmrsStandIn.js';

/* The refresh calls as OpenMRS's REST module takes them, and every answer told apart. */
describe('calls to OpenMRS’s cleardbcache and searchindexupdate', () => {
  let openmrs: OpenmrsStandIn;
  beforeEach(async () => {
    openmrs = new OpenmrsStandIn();
    await openmrs.up();
  });
  afterEach(async () => openmrs.down());

  const access = () => ({ url: openmrs.url, user: 'clerk', password: 'pä:ss', timeoutMs: 5_000 });
  const one = {
    what: 'index' as const,
    resource: 'patient',
    subResource: 'identifier',
    uuid: 'a7e04421-525f-442f-8138-05b619d16def',
  };

  it('sends only the parts given, and nothing for a whole refresh', () => {
    expect(JSON.parse(requestBody(one))).toEqual({
      resource: 'patient',
      subResource: 'identifier',
      uuid: one.uuid,
    });
    expect(requestBody({ ...one, subResource: '', uuid: '' })).toBe('{"resource":"patient"}');
    expect(requestBody({ what: 'cache', resource: '', subResource: '', uuid: '' })).toBe('');
  });

  it('posts to the resource with the user’s credentials; a trailing slash changes nothing', async () => {
    expect(await callOpenmrs({ ...access(), url: `${openmrs.url}/` }, one)).toEqual({ ok: true });
    expect(await callOpenmrs(access(), { ...one, what: 'cache', uuid: '' })).toEqual({ ok: true });
    expect(openmrs.calls).toEqual([
      { service: 'searchindexupdate', ...pick(one), credentials: 'clerk:pä:ss' },
      {
        service: 'cleardbcache',
        resource: 'patient',
        subResource: 'identifier',
        uuid: null,
        credentials: 'clerk:pä:ss',
      },
    ]);
  });

  it('tells a refused login, a missing REST module and a busy OpenMRS from a bad entry', async () => {
    openmrs.failWith(401);
    expect(await callOpenmrs(access(), one)).toMatchObject({
      ok: false,
      entryFault: false,
      reason: expect.stringMatching(/refused the user "clerk" \(answer 401\)/),
    });
    openmrs.failWith(503);
    expect(await callOpenmrs(access(), one)).toMatchObject({ ok: false, entryFault: false });
    openmrs.failWith(500);
    expect(await callOpenmrs(access(), one)).toEqual({
      ok: false,
      entryFault: true,
      reason: 'it answered 500',
    });
    openmrs.failWith(null);
    expect(
      await callOpenmrs({ ...access(), url: openmrs.url.replace('/openmrs', '') }, one),
    ).toMatchObject({
      ok: false,
      entryFault: false,
      reason: expect.stringMatching(/needs OpenMRS 2\.0 or newer/),
    });
    await openmrs.down();
    expect(await callOpenmrs(access(), one)).toMatchObject({
      ok: false,
      entryFault: false,
      // a kept-alive connection cut, or none at all: both are OpenMRS away
      reason: expect.stringMatching(/^no answer: (the connection was cut|nothing listens)/),
    });
  });
});

function pick(c: { resource: string; subResource: string; uuid: string }) {
  return { resource: c.resource, subResource: c.subResource, uuid: c.uuid };
}
