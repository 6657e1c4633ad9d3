/**
 * Stage 3, authenticate: who calls. The Bearer token is verified (shared/access/identity.ts) unless the route is
 * open (health, JWKS, and the EKM status routes when OPENEKM_STATUS_PUBLIC is set). The access reason the caller
 * states is read here too, and refused unless it is the default or the caller is one of the principals the
 * operator lets state reasons (OPENEKM_ACCESS_REASON_PRINCIPALS): the reason is what an external key manager's
 * justification policy decides on, so it is an operator's statement, not any caller's (docs/security.md).
 */
import type { Caller, TokenVerifier } from '../access/identity.js';
import { memberMatches } from '../access/roles.js';
import type { Config } from '../config.js';
import { RpcError } from '../errors.js';
import { enumValue } from '../resources/fields.js';
import { AccessReason, type AccessReasonName } from '../resources/types.js';
import type { Route } from './routes.js';

const ANONYMOUS: Caller = { principal: 'anonymous', issuer: '' };

/** Whether the route answers without identity under this configuration. */
export function isOpen(route: Route, config: Config): boolean {
  return (
    !route.authenticated ||
    (config.statusPublic && (route.path === '/health/ekm' || route.path === '/health/status'))
  );
}

export async function authenticate(
  verifier: TokenVerifier,
  open: boolean,
  authorization: string | undefined,
): Promise<Caller> {
  if (!open) return verifier.verify(authorization);
  // An open route still knows a caller who sends a valid token (an operator on a public status page sees every
  // target; anonymous viewers see only what anyone may, shared/health/visibility.ts).
  if (!authorization) return ANONYMOUS;
  return verifier.verify(authorization).catch(() => ANONYMOUS);
}

/** The header in which a caller states why it uses a key (Key Access Justifications), by name or number. */
export const ACCESS_REASON_HEADER = 'x-openekm-access-reason';
const DEFAULT_ACCESS_REASON: AccessReasonName = 'CUSTOMER_INITIATED_ACCESS';

export function accessReason(raw: string | undefined): AccessReasonName {
  if (raw === undefined || raw.trim() === '') return DEFAULT_ACCESS_REASON;
  const name = enumValue(AccessReason, raw.trim(), ACCESS_REASON_HEADER) as AccessReasonName;
  if (name === 'REASON_UNSPECIFIED') return DEFAULT_ACCESS_REASON;
  return name;
}

/** Whether configuration lets `principal` state an access reason (directly, by domain, or through a group). */
export function mayStateReason(
  principal: string,
  config: Pick<Config, 'accessReasonPrincipals' | 'groups'>,
): boolean {
  const p = principal.toLowerCase();
  return config.accessReasonPrincipals.some((m) => {
    if (memberMatches(m, principal)) return true;
    if (!m.startsWith('group:')) return false;
    const members = config.groups[m.slice(6).toLowerCase()] ?? [];
    return members.some((x) => x.toLowerCase() === p);
  });
}

/**
 * The caller's reason, when the caller may state it: the default needs nobody's leave; any other reason is
 * PERMISSION_DENIED for a caller configuration does not list, before any key is used.
 */
export function permittedReason(
  reason: AccessReasonName,
  caller: Caller,
  config: Pick<Config, 'accessReasonPrincipals' | 'groups'>,
): AccessReasonName {
  if (reason === DEFAULT_ACCESS_REASON || mayStateReason(caller.principal, config)) return reason;
  throw RpcError.permissionDenied(
    `${caller.principal} may not state the access reason ${reason} (X-OpenEKM-Access-Reason): only principals the operator lists in OPENEKM_ACCESS_REASON_PRINCIPALS may state a reason other than ${DEFAULT_ACCESS_REASON}. Send the request without the header.`,
  );
}
