/**
 * metav1.Condition bookkeeping (peers.md §2d): one condition per type; lastTransitionTime changes only
 * when the status flips; reason CamelCase; observedGeneration stamped on each.
 */
import type { Condition, ConditionType } from './api/v1alpha1/common.js';

export type { Condition, ConditionType };

/** What a reconcile wants a condition to say. */
export interface ConditionUpdate {
  type: ConditionType;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

/**
 * Returns `conditions` with `u` applied (a new array; the input is not changed). `now` is RFC 3339.
 * @throws Error when the reason is not CamelCase (the API server would refuse the status write).
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  u: ConditionUpdate,
  generation: number,
  now: string,
): Condition[] {
  if (!/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/.test(u.reason))
    throw new Error(`condition reason "${u.reason}" is not CamelCase`);
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === u.type);
  const prev = i >= 0 ? list[i] : undefined;
  const next: Condition = {
    type: u.type,
    status: u.status,
    reason: u.reason,
    message: u.message.slice(0, 32768),
    observedGeneration: generation,
    lastTransitionTime: prev && prev.status === u.status ? prev.lastTransitionTime : now,
  };
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

/** The condition of `type`, if any. */
export const findCondition = (
  conditions: readonly Condition[] | undefined,
  type: ConditionType,
): Condition | undefined => conditions?.find((c) => c.type === type);

/** RFC 3339 time without milliseconds (metav1.Time's wire form). */
export const rfc3339 = (d = new Date()): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
