/**
 * IAM policies and the one permission check of the request pipeline.
 *
 * Where policies live: a key ring's or crypto key's policy is the Firestore document `{resource}/iamPolicies/current`
 * — a sibling of the resource's own fields, so no resource write can overwrite it and no policy write touches the
 * resource. Projects are not resources of this API: who owns a project comes from configuration only
 * (OPENEKM_PROJECT_OWNERS, OPENEKM_DEFAULT_OWNERS), as roles/owner.
 *
 * Bindings inherit downwards: project → key ring → crypto key (a version is covered by its key's policy). A check
 * looks at the project first (in memory: the owner's hot path costs no read at all), then reads the key ring's and
 * the key's policies in parallel through the metadata cache, so a policy is evaluated from a copy at most
 * OPENEKM_METADATA_CACHE_MS old (1 s by default) and a setIamPolicy through this instance is seen at once.
 */
import { ApiError } from '../api/errors.js';
import type { Config } from '../config.js';
import { isValidId } from '../resources/names.js';
import type { MetadataCache } from '../store/cache.js';
import type { Caller } from './identity.js';
import { DEPLOYMENT_PERMISSIONS, memberMatches, ROLES } from './roles.js';

export interface Condition {
  expression: string;
  title?: string;
  description?: string;
}
export interface Binding {
  role: string;
  members: string[];
  condition?: Condition;
}
/** The stored policy document (google.iam.v1.Policy plus when it was written). */
export interface PolicyDoc {
  version: number;
  bindings: Binding[];
  etag: string;
  updateTime?: string;
  [field: string]: unknown;
}

/** The etag of a resource that never had a policy set (the value Google returns for an empty policy). */
export const EMPTY_POLICY_ETAG = 'ACAB';

export function policyPath(resource: string): string {
  return `${resource}/iamPolicies/current`;
}

export interface IamConfig {
  projectOwners: Record<string, string[]>;
  defaultOwners: string[];
  operators: string[];
}

/** The key ring and crypto key whose policies apply to `name` (a location, key ring, key or version name). */
export function policyResources(name: string): string[] {
  const s = name.split('/');
  const out: string[] = [];
  if (s.length >= 6 && s[4] === 'keyRings' && isValidId(s[5]!)) {
    out.push(s.slice(0, 6).join('/'));
    if (s.length >= 8 && s[6] === 'cryptoKeys' && isValidId(s[7]!)) out.push(s.slice(0, 8).join('/'));
  }
  if (s.length === 6 && s[4] === 'ekmConnections' && isValidId(s[5]!)) out.push(name);
  return out;
}

/** Permissions granted per member, unconditional bindings only (conditions are not evaluated: they grant nothing). */
type Grants = Map<string, Set<string>>;

function compile(bindings: readonly Binding[]): Grants {
  const grants: Grants = new Map();
  for (const b of bindings) {
    if (b.condition) continue;
    const perms = ROLES[b.role];
    if (!perms) continue;
    for (const m of b.members) {
      const key =
        m.startsWith('user:') || m.startsWith('serviceAccount:') || m.startsWith('domain:')
          ? m.toLowerCase()
          : m;
      const set = grants.get(key) ?? new Set<string>();
      grants.set(key, set);
      for (const p of perms) set.add(p);
    }
  }
  return grants;
}

function grantsTo(grants: Grants, principal: string): Set<string>[] {
  const p = principal.toLowerCase();
  const at = p.lastIndexOf('@');
  const keys = [p, 'allUsers', 'allAuthenticatedUsers'];
  if (at > 0) keys.push(`domain:${p.slice(at + 1)}`);
  return keys.flatMap((k) => grants.get(k) ?? []);
}

export class Authorizer {
  /** Compiled grants per policy document object: a cached document is compiled once, a re-read one again. */
  private readonly compiled = new WeakMap<object, Grants>();
  private readonly projects = new Map<string, Grants>();
  private readonly defaultOwners: Grants;
  private readonly operators: string[];

  constructor(
    config: IamConfig,
    private readonly cache: MetadataCache,
  ) {
    this.defaultOwners = compile([{ role: 'roles/owner', members: config.defaultOwners }]);
    for (const [project, owners] of Object.entries(config.projectOwners)) {
      this.projects.set(project, compile([{ role: 'roles/owner', members: owners }]));
    }
    this.operators = [...config.operators, ...config.defaultOwners];
  }

  /**
   * Throws (or rejects with) PERMISSION_DENIED unless the caller holds `permission` on `name` — whether or not
   * `name` exists. Answers synchronously (undefined, no promise) when configuration alone grants it: the owners'
   * hot path costs neither a read nor a promise.
   */
  authorize(caller: Caller, permission: string, name: string): Promise<void> | undefined {
    if (!DEPLOYMENT_PERMISSIONS.has(permission)) {
      const want = new Set([permission]);
      if (collect(this.configured(name), caller.principal, want, new Set())) return undefined;
    }
    return this.authorizeFromPolicies(caller, permission, name);
  }

  private async authorizeFromPolicies(caller: Caller, permission: string, name: string): Promise<void> {
    const held = await this.held(caller, name, [permission]);
    if (held.has(permission)) return;
    if (DEPLOYMENT_PERMISSIONS.has(permission)) {
      throw ApiError.permissionDenied(
        `Permission '${permission}' denied: the scheduled tasks, the EKM probe and the EKM status are for the deployment's operators; add ${caller.principal} to OPENEKM_OPERATORS.`,
      );
    }
    throw ApiError.permissionDenied(
      `Permission '${permission}' denied on resource '${name}' (or it may not exist).`,
    );
  }

  /** Which of `permissions` the caller holds on `name` (through the project, its key ring or its key). */
  async held(caller: Caller, name: string, permissions: readonly string[]): Promise<Set<string>> {
    const held = new Set<string>();
    const want = new Set(permissions);
    const operator = this.operators.some((m) => memberMatches(m, caller.principal));
    for (const p of DEPLOYMENT_PERMISSIONS) if (want.delete(p) && operator) held.add(p);
    if (want.size === 0) return held;
    if (collect(this.configured(name), caller.principal, want, held)) return held;
    const docs = await Promise.all(
      policyResources(name).map((r) => this.cache.get<PolicyDoc>(policyPath(r))),
    );
    collect(
      docs.filter((d): d is PolicyDoc => d !== undefined).map((d) => this.grantsOf(d)),
      caller.principal,
      want,
      held,
    );
    return held;
  }

  /** The grants configuration gives on `name`: the default owners and its project's owners. */
  private configured(name: string): Grants[] {
    if (this.projects.size === 0 || !name.startsWith('projects/')) return [this.defaultOwners];
    const end = name.indexOf('/', 9);
    const projectGrants = this.projects.get(name.slice(9, end < 0 ? undefined : end));
    return projectGrants ? [this.defaultOwners, projectGrants] : [this.defaultOwners];
  }

  private grantsOf(doc: PolicyDoc): Grants {
    let g = this.compiled.get(doc);
    if (!g) {
      g = compile(Array.isArray(doc.bindings) ? doc.bindings : []);
      this.compiled.set(doc, g);
    }
    return g;
  }
}

/** Moves every wanted permission some layer grants into `held`; true when nothing is left to find. */
function collect(layers: Grants[], principal: string, want: Set<string>, held: Set<string>): boolean {
  for (const layer of layers) {
    for (const set of grantsTo(layer, principal)) {
      for (const p of want) {
        if (set.has(p)) {
          held.add(p);
          want.delete(p);
        }
      }
      if (want.size === 0) return true;
    }
  }
  return want.size === 0;
}

export function iamConfigOf(config: Config): IamConfig {
  return {
    projectOwners: config.projectOwners,
    defaultOwners: config.defaultOwners,
    operators: config.operators,
  };
}
