import { describe, expect, it } from 'vitest';
import { OPENMRS_LEFT_OUT, tableFilter } from '../../src/engine/capture/tableFilter.js';
import { PRESET_LEFT_OUT } from '../../renderer/src/presetReasons.js';
import { en } from '../../renderer/src/i18n/en.js';
import { fr } from '../../renderer/src/i18n/fr.js';

/*
 * Issue 12, item 5: every table the OpenMRS preset leaves out has a one-line reason shown in the
 * settings, in both languages, and the tables named beside the reasons are the ones left out.
 */
describe('the OpenMRS preset, explained', () => {
  const openmrs = tableFilter({ preset: 'openmrs', include: [], exclude: [] });

  it('leaves out what each server keeps for itself, in every category the issue names', () => {
    const leftOut = [
      'liquibasechangelog',
      'liquibasechangeloglock',
      'scheduler_task_config',
      'scheduler_task_config_property',
      'hl7_in_queue',
      'hl7_in_archive',
      'hl7_in_error',
      'idgen_seq_id_gen',
      'idgen_pooled_identifier',
      'idgen_log_entry',
      'idgen_reserved_identifier',
      'concept_set_derived',
      'concept_word',
      'user_property',
      'notification_alert_recipient',
      'sync_record',
      'sync_server',
      'sync_import',
    ];
    for (const t of leftOut) expect(openmrs(t), t).toBe(false);
  });

  it('keeps the clinical data and the shared metadata next to them', () => {
    for (const t of [
      'patient',
      'person',
      'obs',
      'concept',
      'concept_name',
      'concept_set',
      'hl7_source',
      'idgen_identifier_source',
      'idgen_id_pool',
      'global_property',
      'users',
      'notification_alert',
    ]) {
      expect(openmrs(t), t).toBe(true);
    }
  });

  it('shows one reason per rule, the same in the settings as in the engine, in English and French', () => {
    expect(PRESET_LEFT_OUT.map((p) => p.key).sort()).toEqual(
      Object.keys(en.settings.presetReasons).sort(),
    );
    expect(Object.keys(fr.settings.presetReasons).sort()).toEqual(
      Object.keys(en.settings.presetReasons).sort(),
    );
    for (const [i, rule] of OPENMRS_LEFT_OUT.entries()) {
      const shown = PRESET_LEFT_OUT[i]!;
      const reason = en.settings.presetReasons[shown.key];
      expect(reason.toLowerCase()).toBe(`${rule.reason}.`.toLowerCase());
      expect(reason).toMatch(/^[A-Z].{10,120}\.$/);
      expect(fr.settings.presetReasons[shown.key]).toMatch(/^\S.{10,140}\.$/);
      for (const table of shown.tables.split(/,\s*/)) {
        if (table.endsWith('…')) expect(table.slice(0, -1)).toMatch(rule.pattern);
        else {
          expect(table).toMatch(rule.pattern);
          expect(openmrs(table), table).toBe(false);
        }
      }
    }
  });
});
