import type { JustificationPolicy } from '../state/types.js';

/** Key Access Justification reasons (google.cloud.kms.v1.AccessReason), by number. */
export const ACCESS_REASONS = [
  'REASON_UNSPECIFIED',
  'CUSTOMER_INITIATED_SUPPORT',
  'GOOGLE_INITIATED_SERVICE',
  'THIRD_PARTY_DATA_REQUEST',
  'GOOGLE_INITIATED_REVIEW',
  'CUSTOMER_INITIATED_ACCESS',
  'GOOGLE_INITIATED_SYSTEM_OPERATION',
  'REASON_NOT_EXPECTED',
  'MODIFIED_CUSTOMER_INITIATED_ACCESS',
  'MODIFIED_GOOGLE_INITIATED_SYSTEM_OPERATION',
  'GOOGLE_RESPONSE_TO_PRODUCTION_ALERT',
  'CUSTOMER_AUTHORIZED_WORKFLOW_SERVICING',
] as const;

export const DEFAULT_JUSTIFICATION_POLICY: JustificationPolicy = {
  allowed: 'any',
  allowMissing: true,
  allowUnknown: false,
};

export type ReasonClass =
  | { kind: 'missing' }
  | { kind: 'known'; name: string }
  | { kind: 'unknown'; raw: string };

/** Proto3 JSON sends enums as names or numbers; absent and REASON_UNSPECIFIED (0) both mean "no reason". */
export function classifyReason(reason: unknown): ReasonClass {
  if (
    reason === undefined ||
    reason === null ||
    reason === '' ||
    reason === 0 ||
    reason === 'REASON_UNSPECIFIED'
  ) {
    return { kind: 'missing' };
  }
  if (
    typeof reason === 'number' &&
    Number.isInteger(reason) &&
    reason > 0 &&
    reason < ACCESS_REASONS.length
  ) {
    return { kind: 'known', name: ACCESS_REASONS[reason]! };
  }
  if (typeof reason === 'string' && (ACCESS_REASONS as readonly string[]).includes(reason)) {
    return { kind: 'known', name: reason };
  }
  return { kind: 'unknown', raw: String(reason).slice(0, 64) };
}

/** Returns undefined when the policy allows the reason, otherwise why not (safe to return to the caller). */
export function refusal(policy: JustificationPolicy, reason: ReasonClass): string | undefined {
  switch (reason.kind) {
    case 'missing':
      return policy.allowMissing
        ? undefined
        : 'the request carries no access justification and the key requires one';
    case 'unknown':
      return policy.allowUnknown
        ? undefined
        : 'the access justification reason is not one this EKM recognises';
    case 'known':
      if (policy.allowed === 'any' || policy.allowed.includes(reason.name)) return undefined;
      return `the access justification ${reason.name} is not allowed for this key`;
  }
}

export function reasonLabel(reason: ReasonClass): string {
  return reason.kind === 'missing'
    ? 'MISSING'
    : reason.kind === 'known'
      ? reason.name
      : `UNKNOWN(${reason.raw})`;
}
