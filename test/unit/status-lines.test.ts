import { describe, expect, it } from 'vitest';
import { describeStatus } from '../../src/cli/commands/status.js';
import type { NodeStatus } from '../../src/engine/node/types.js';
import { quietStatus } from '../helpers/status.js';

const base: NodeStatus = quietStatus({
  parent: 'https://district.example.org:8750',
  journalBytes: 2048,
  incarnation: 'abcd1234',
});

/* `clinic-sync status` says in one line whether the clinic's OpenMRS has been refreshed. */
describe('the OpenMRS line of status', () => {
  const openmrsLine = (s: NodeStatus) => describeStatus(s).filter((l) => l.startsWith('OpenMRS'));
  const url = 'http://localhost:8080/openmrs';

  it('is absent when no OpenMRS is named', () => {
    expect(openmrsLine(base)).toEqual([]);
    expect(openmrsLine({ ...base, openmrsRefresh: null })).toEqual([]);
  });

  it('says up to date, still sending, or the problem in plain words', () => {
    expect(openmrsLine({ ...base, openmrsRefresh: { url, pending: 0, problem: null } })).toEqual([
      `OpenMRS (${url}): up to date with what was received`,
    ]);
    expect(openmrsLine({ ...base, openmrsRefresh: { url, pending: 7, problem: null } })).toEqual([
      `OpenMRS (${url}): 7 refreshes being sent`,
    ]);
    const problem = `OpenMRS at ${url} could not be refreshed (no answer: nothing listens at that address (is OpenMRS running?)) at 2026-11-27 00:40 UTC; 7 refreshes of received patients, names, identifiers and concepts wait, so OpenMRS may not show or find them yet. The sync itself goes on, and ClinicSync tries again by itself.`;
    expect(openmrsLine({ ...base, openmrsRefresh: { url, pending: 7, problem } })).toEqual([
      problem,
    ]);
  });
});

/* `clinic-sync status` says how attached files (complex obs) are getting on. */
describe('the attached files line of status', () => {
  const filesLines = (s: NodeStatus) =>
    describeStatus(s).filter((l) => l.startsWith('Attached files') || l.includes('not taken'));
  const files = { arriving: 0, bytesToCome: 0, waitingForRecord: 0, sending: 0, problem: null };

  it('is absent when the node carries no files, and says when all are exchanged', () => {
    expect(filesLines(base)).toEqual([]);
    expect(filesLines({ ...base, complexObsFiles: null })).toEqual([]);
    expect(filesLines({ ...base, complexObsFiles: files })).toEqual([
      'Attached files: all exchanged',
    ]);
  });

  it('counts what arrives, waits and goes, and adds the problem in plain words', () => {
    const problem =
      '1 attached file from another computer was not taken because it is larger than the limit of 50 MB (setting complexObs.maxFileMegabytes): huge.bin.';
    expect(
      filesLines({
        ...base,
        complexObsFiles: {
          arriving: 2,
          bytesToCome: 3 * 1024 * 1024,
          waitingForRecord: 1,
          sending: 4,
          problem,
        },
      }),
    ).toEqual([
      'Attached files: 2 arriving (3.0 MiB to come), 1 waiting for their record, 4 being sent',
      problem,
    ]);
  });
});
