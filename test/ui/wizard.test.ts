import { describe, expect, it } from 'vitest';
import type { CloneProgress, SetupState } from '../../src/api/types.js';
import { dbFields, dbUrl, parentUrl } from '../../renderer/src/addresses.js';
import { resumeStep } from '../../renderer/src/screens/Wizard.js';

/*
 * The wizard's pure parts: where a person left off is where they come back, and the addresses
 * they type become the ones the engine takes.
 */

const progress = (step: string, role: 'root' | 'child' | null = 'child') => ({
  step,
  role,
  dbUrl: 'mysql://openmrs@127.0.0.1:3306/openmrs',
  name: 'Butaro',
  parentUrl: 'http://district:8750',
});
const clone = (phase: CloneProgress['phase']): CloneProgress => ({
  phase,
  tablesDone: 1,
  tablesTotal: 3,
  rowsDone: 10,
  bytesDone: 100,
  etaSeconds: 5,
  error: null,
});
const state = (over: Partial<SetupState>): SetupState => ({
  node: null,
  progress: null,
  clone: null,
  ...over,
});

describe('resuming the wizard', () => {
  it('starts with the role on a fresh computer', () => {
    expect(resumeStep(state({}))).toBe('role');
  });

  it('comes back to the step it was left on', () => {
    expect(resumeStep(state({ progress: progress('database') }))).toBe('database');
    expect(resumeStep(state({ progress: progress('parent') }))).toBe('parent');
    expect(resumeStep(state({ progress: progress('name', 'root') }))).toBe('name');
  });

  it('shows a copy still running, and asks the pairing code again after one that stopped', () => {
    expect(resumeStep(state({ progress: progress('clone'), clone: clone('rows') }))).toBe('clone');
    expect(resumeStep(state({ progress: progress('clone'), clone: clone('failed') }))).toBe(
      'parent',
    );
    expect(resumeStep(state({ progress: progress('clone') }))).toBe('parent');
  });

  it('goes on after the node was made, never back before it', () => {
    const root = { name: 'District', role: 'root' as const };
    const child = { name: 'Butaro', role: 'child' as const };
    expect(resumeStep(state({ node: root, progress: progress('pairing', 'root') }))).toBe(
      'pairing',
    );
    expect(resumeStep(state({ node: root, progress: progress('name', 'root') }))).toBe('pairing');
    expect(resumeStep(state({ node: child, progress: progress('clone') }))).toBe('schedule');
    // A step after the node, saved while there is none (the node was removed): start again.
    expect(resumeStep(state({ progress: progress('schedule') }))).toBe('role');
  });
});

describe('the addresses typed in the wizard', () => {
  it('makes the database address from its parts, the password only when asked', () => {
    const f = {
      host: '127.0.0.1',
      port: '3306',
      database: 'openmrs',
      user: 'open mrs',
      password: 'p@ss:w/rd',
    };
    expect(dbUrl(f, false)).toBe('mysql://open%20mrs@127.0.0.1:3306/openmrs');
    const full = dbUrl(f, true);
    expect(full).toBe('mysql://open%20mrs:p%40ss%3Aw%2Frd@127.0.0.1:3306/openmrs');
    expect(dbFields(full)).toEqual(f);
    expect(dbUrl({ ...f, host: '::1' }, false)).toBe('mysql://open%20mrs@[::1]:3306/openmrs');
    expect(dbFields('mysql://u@[::1]/db')).toMatchObject({ host: '::1', port: '3306' });
    expect(dbFields('postgres://x')).toBeNull();
  });

  it('takes an IP address or a DDNS name for the main server, port 8750 unless given', () => {
    expect(parentUrl('192.168.1.10')).toBe('http://192.168.1.10:8750');
    expect(parentUrl(' butaro.ddns.net ')).toBe('http://butaro.ddns.net:8750');
    expect(parentUrl('butaro.ddns.net:9000')).toBe('http://butaro.ddns.net:9000');
    expect(parentUrl('district:80')).toBe('http://district:80');
    expect(parentUrl('https://district.example.org')).toBe('https://district.example.org');
    expect(parentUrl('https://district.example.org:8443/')).toBe(
      'https://district.example.org:8443',
    );
    expect(parentUrl('[::1]:8750')).toBe('http://[::1]:8750');
    expect(parentUrl('')).toBeNull();
    expect(parentUrl('district/path')).toBeNull();
    expect(parentUrl('ftp://district')).toBeNull();
    expect(parentUrl('dis trict')).toBeNull();
  });
});
