/*
 * What the OpenMRS table choice leaves out, with the reason shown in Settings (one entry per
 * rule of OPENMRS_LEFT_OUT in src/engine/capture/tableFilter.ts; a test keeps the two alike).
 */
export const PRESET_LEFT_OUT = [
  { key: 'liquibase', tables: 'liquibasechangelog, liquibasechangeloglock' },
  { key: 'scheduler', tables: 'scheduler_task_config…' },
  { key: 'hl7', tables: 'hl7_in_queue, hl7_in_archive, hl7_in_error' },
  {
    key: 'idgen',
    tables: 'idgen_seq_id_gen, idgen_pooled_identifier, idgen_log_entry, idgen_reserved_identifier',
  },
  { key: 'sync', tables: 'sync_…' },
  { key: 'ui', tables: 'notification_alert_recipient, user_property' },
  { key: 'searchIndex', tables: 'concept_word' },
  { key: 'caches', tables: 'concept_set_derived' },
] as const;
