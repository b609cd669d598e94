import { SyncError } from '../errors.js';
import type { Value } from '../capture/values.js';
import type { Identities } from '../identity/identities.js';
import { splitParts, type TablePlan } from '../identity/plan.js';

/** Key values a natural identity implies, or the part that is not here yet. */
export async function keyFromIdent(
  ids: Identities,
  plan: TablePlan,
  ident: string,
): Promise<{ values: Record<string, Value> } | { missing: { table: string; ident: string } }> {
  const id = plan.identity;
  if (id.kind !== 'natural') return { values: {} };
  const parts = splitParts(ident, id.parts.length);
  if (!parts)
    throw new SyncError(
      'protocol',
      `"${ident.slice(0, 60)}" is not an identity of a row of ${plan.table.name}.`,
    );
  const values: Record<string, Value> = {};
  for (const [i, p] of id.parts.entries()) {
    if (p.ref === null) continue; // plain key columns travel among the values
    const local = (await ids.localIds(p.ref, [parts[i]!])).get(parts[i]!);
    if (local === undefined) return { missing: { table: p.ref, ident: parts[i]! } };
    values[p.column] = local;
  }
  return { values };
}
