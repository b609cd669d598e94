/**
 * Columns that mean one thing together resolve together (DESIGN §6): when one of them changes,
 * all of them travel with the same clock, so last-writer-wins never mixes two people's voids.
 */
const GROUPS: string[][] = [
  ['voided', 'voided_by', 'date_voided', 'void_reason'],
  ['retired', 'retired_by', 'date_retired', 'retire_reason'],
  [
    'value_group_id',
    'value_boolean',
    'value_coded',
    'value_coded_name_id',
    'value_drug',
    'value_datetime',
    'value_numeric',
    'value_modifier',
    'value_text',
    'value_complex',
  ],
];

/** `changed` widened to whole groups, among the columns the table has. */
export function expandGroups(changed: Set<string>, columns: string[]): Set<string> {
  const out = new Set(changed);
  for (const g of GROUPS) {
    if (g.some((c) => changed.has(c))) for (const c of g) if (columns.includes(c)) out.add(c);
  }
  return out;
}
