/**
 * Who OpenEKM is at an external key manager, per project. Cloud EKM gives every project its own service agent and
 * partners grant keys to that identity; OpenEKM does the same: every Google EKM call made for a resource of project
 * P carries a JWT whose `sub` and `email` are P's EKM identity (docs/external-keys.md, "Identity at the EKM"):
 *
 *   service-{project}@{domain}          for project ids of lower-case letters, digits and hyphens (≤ 54 characters)
 *   service.{24 hex of SHA-256(id)}@{domain}   for any other project id (upper case, dots, colons, …)
 *
 * `domain` is OPENEKM_EKM_IDENTITY_DOMAIN, by default the domain of the gateway identity. The two forms can never
 * coincide (one starts with "service-", the other with "service."), and no two projects share an identity, even at
 * a partner that compares emails case-insensitively. Calls that belong to no project (the probes of the declared
 * EKM endpoints) carry the gateway identity itself.
 */
import { createHash } from 'node:crypto';
import type { ResolvedKey } from './endpoints.js';
import { EkmFailure } from './errors.js';

const SIMPLE_PROJECT = /^[a-z0-9](?:[a-z0-9-]{0,52}[a-z0-9])?$/;
const RESOURCE = /^projects\/([^/]+)\//;

/** The project of a resource name (`projects/{p}/…`), if it is one. */
function projectOf(resourceName: string | undefined): string | undefined {
  const m = RESOURCE.exec(resourceName ?? '');
  return m ? m[1] : undefined;
}

/** The EKM identity (an email address) of `project` under `domain`. */
export function projectEkmIdentity(project: string, domain: string): string {
  if (SIMPLE_PROJECT.test(project)) return `service-${project}@${domain}`;
  const digest = createHash('sha256').update(project, 'utf8').digest('hex').slice(0, 24);
  return `service.${digest}@${domain}`;
}

/**
 * The identity a call made for `resourceName` carries: its project's EKM identity, or `gatewayEmail` when the name
 * belongs to no project.
 */
export function ekmIdentityFor(
  resourceName: string | undefined,
  gatewayEmail: string,
  domain?: string,
): string {
  const project = projectOf(resourceName);
  if (!project) return gatewayEmail;
  return projectEkmIdentity(project, domain ?? gatewayEmail.slice(gatewayEmail.lastIndexOf('@') + 1));
}

/**
 * `key` when its endpoint serves the project `resourceName` belongs to: a declared endpoint may name the projects
 * whose keys use it (`"projects"`, how tenants of an XKS proxy are kept apart). Otherwise EkmFailure
 * EXTERNAL_KEY_HOST_NOT_WHITELISTED, before anything is sent.
 */
export function servingProject(key: ResolvedKey, resourceName: string | undefined): ResolvedKey {
  const allowed = key.endpoint.projects;
  if (!allowed) return key;
  const project = projectOf(resourceName);
  if (project !== undefined && allowed.includes(project)) return key;
  throw new EkmFailure(
    'EXTERNAL_KEY_HOST_NOT_WHITELISTED',
    `the EKM endpoint ${key.endpoint.prefix} does not serve project ${project ?? '(none)'}`,
  );
}
