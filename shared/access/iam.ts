/**
 * IAM policies and the one permission check of the request pipeline.
 *
 * Where policies live: a key ring's or crypto key's policy is the Firestore document `{resource}/iamPolicies/current`
 * — a sibling of the resource's own fields, so no resource write can overwrite it and no policy write touches the
 * resource. Projects are not resources of this API: who owns a project comes from configuration only
 * (OPENEKM_PROJECT_OWNERS, OPENEKM_DEFAULT_OWNERS), as roles/owner.
 *
 * Bindings inherit downwards: project → key ring → crypto key or import job (a version is covered by its key's
 * policy). A check
 * looks at the project first (in memory: the owner's hot path costs no read at all), then reads the key ring's and
 * the key's policies in parallel through the metadata cache, so a policy is evaluated from a copy at most
 * OPENEKM_METADATA_CACHE_MS old (1 s by default) and a setIamPolicy through this instance is seen at once.
 *
 * A conditional binding (shared/access/conditions/) grants when its condition holds for the name the permission
 * is checked on, at the request time; conditions are compiled once per policy document and evaluated only when
 * no unconditional grant answered. `group:` members grant to the principals OPENEKM_GROUPS lists for the group
 * (configuration: Google Groups are not queried), in policies and in the owner and operator lists alike.
 */

import type { Config } from '../config.js';
import { RpcError } from '../errors.js';
import { isValidId } from '../resources/names.js';
import type { MetadataCache } from '../store/cache.js';
import { type CompiledCondition, type ConditionInput, compileCondition } from './conditions/evaluate.js';
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
  /** Group email (lower case) → its user: and serviceAccount: members (OPENEKM_GROUPS); no nested groups. */
  groups?: Record<string, string[]>;
}

/** The key ring and crypto key (or import job) whose policies apply to `name` (a location, key ring, key, version or import job name). */
function policyResources(name: string): string[] {
  const s = name.split('/');
  const out: string[] = [];
  if (s.length >= 6 && s[4] === 'keyRings' && isValidId(s[5]!)) {
    out.push(s.slice(0, 6).join('/'));
    if (s.length >= 8 && s[6] === 'cryptoKeys' && isValidId(s[7]!)) out.push(s.slice(0, 8).join('/'));
    if (s.length === 8 && s[6] === 'importJobs' && isValidId(s[7]!)) out.push(name);
  }
  if (s.length === 6 && s[4] === 'ekmConnections' && isValidId(s[5]!)) out.push(name);
  return out;
}

/** Permissions granted per member key (see memberKey). */
type Grants = Map<string, Set<string>>;

/** A policy compiled for checks: its unconditional grants, and each conditional binding's grants and test. */
interface CompiledPolicy {
  grants: Grants;
  /** `test` is undefined for a stored expression that no longer compiles: it grants nothing (fails closed). */
  conditional: { grants: Grants; test: CompiledCondition | undefined }[];
}

/** Emails (and domains) compare case-insensitively: user:, serviceAccount:, group: and domain: keys are lower case. */
function memberKey(m: string): string {
  return m.startsWith('user:') ||
    m.startsWith('serviceAccount:') ||
    m.startsWith('domain:') ||
    m.startsWith('group:')
    ? m.toLowerCase()
    : m;
}

function addGrants(grants: Grants, members: readonly string[], perms: readonly string[]): void {
  for (const m of members) {
    const key = memberKey(m);
    const set = grants.get(key) ?? new Set<string>();
    grants.set(key, set);
    for (const p of perms) set.add(p);
  }
}

/** The unconditional grants of `bindings` (used for the owners from configuration, which have no conditions). */
function compile(bindings: readonly Binding[]): Grants {
  return compilePolicy(bindings).grants;
}

function compilePolicy(bindings: readonly Binding[]): CompiledPolicy {
  const out: CompiledPolicy = { grants: new Map(), conditional: [] };
  for (const b of bindings) {
    const perms = ROLES[b.role];
    if (!perms || !Array.isArray(b.members)) continue;
    if (!b.condition) {
      addGrants(out.grants, b.members, perms);
      continue;
    }
    let test: CompiledCondition | undefined;
    try {
      test = compileCondition(String(b.condition.expression));
    } catch {
      test = undefined;
    }
    const grants: Grants = new Map();
    addGrants(grants, b.members, perms);
    out.conditional.push({ grants, test });
  }
  return out;
}

/**
 * The member keys that name `principal`: itself, allUsers, allAuthenticatedUsers, its email's domain, and the
 * groups configuration puts it in (OPENEKM_GROUPS).
 */
function keysOf(principal: string, groups: ReadonlyMap<string, readonly string[]>): string[] {
  const p = principal.toLowerCase();
  const at = p.lastIndexOf('@');
  const keys = [p, 'allUsers', 'allAuthenticatedUsers'];
  if (at > 0) keys.push(`domain:${p.slice(at + 1)}`);
  const of = groups.get(p);
  if (of) keys.push(...of);
  return keys;
}

export class Authorizer {
  /** Compiled policies per policy document object: a cached document is compiled once, a re-read one again. */
  private readonly compiled = new WeakMap<object, CompiledPolicy>();
  private readonly projects = new Map<string, Grants>();
  private readonly defaultOwners: Grants;
  private readonly operators: string[];
  /** Principal (lower case) → the group: keys configuration puts it in. */
  private readonly groups = new Map<string, string[]>();
  /** The request time conditions see, epoch ms. */
  private readonly clock: () => number;

  constructor(
    config: IamConfig,
    private readonly cache: MetadataCache,
    /** The clock of request.time in conditions (Deps.now); the system clock when not given. */
    now?: () => Date,
  ) {
    this.defaultOwners = compile([{ role: 'roles/owner', members: config.defaultOwners }]);
    for (const [project, owners] of Object.entries(config.projectOwners)) {
      this.projects.set(project, compile([{ role: 'roles/owner', members: owners }]));
    }
    this.operators = [...config.operators, ...config.defaultOwners].map(memberKey);
    for (const [group, members] of Object.entries(config.groups ?? {})) {
      for (const m of members) {
        const p = m.toLowerCase();
        const list = this.groups.get(p) ?? [];
        list.push(`group:${group.toLowerCase()}`);
        this.groups.set(p, list);
      }
    }
    this.clock = now ? () => now().getTime() : Date.now;
  }

  /**
   * Throws (or rejects with) PERMISSION_DENIED unless the caller holds `permission` on `name` — whether or not
   * `name` exists. Answers synchronously (undefined, no promise) when configuration alone grants it: the owners'
   * hot path costs neither a read nor a promise.
   */
  authorize(caller: Caller, permission: string, name: string): Promise<void> | undefined {
    if (!DEPLOYMENT_PERMISSIONS.has(permission)) {
      const want = new Set([permission]);
      const keys = keysOf(caller.principal, this.groups);
      if (collect(this.configured(name), keys, want, new Set())) return undefined;
    }
    return this.authorizeFromPolicies(caller, permission, name);
  }

  private async authorizeFromPolicies(caller: Caller, permission: string, name: string): Promise<void> {
    const held = await this.held(caller, name, [permission]);
    if (held.has(permission)) return;
    if (DEPLOYMENT_PERMISSIONS.has(permission)) {
      throw RpcError.permissionDenied(
        `Permission '${permission}' denied: the scheduled tasks, the EKM probe and the EKM status are for the deployment's operators; add ${caller.principal} to OPENEKM_OPERATORS.`,
      );
    }
    throw RpcError.permissionDenied(
      `Permission '${permission}' denied on resource '${name}' (or it may not exist).`,
    );
  }

  /**
   * Which of `permissions` the caller holds on `name` (through the project, its key ring or its key). A
   * conditional binding counts when its condition holds for `name` at the request time.
   */
  async held(caller: Caller, name: string, permissions: readonly string[]): Promise<Set<string>> {
    const held = new Set<string>();
    const want = new Set(permissions);
    const keys = keysOf(caller.principal, this.groups);
    const operator = this.operators.some((m) => keys.includes(m) || memberMatches(m, caller.principal));
    for (const p of DEPLOYMENT_PERMISSIONS) if (want.delete(p) && operator) held.add(p);
    if (want.size === 0) return held;
    if (collect(this.configured(name), keys, want, held)) return held;
    const docs = await Promise.all(
      policyResources(name).map((r) => this.cache.get<PolicyDoc>(policyPath(r))),
    );
    const policies = docs.filter((d): d is PolicyDoc => d !== undefined).map((d) => this.policyOf(d));
    if (
      collect(
        policies.map((p) => p.grants),
        keys,
        want,
        held,
      )
    )
      return held;
    let input: ConditionInput | undefined;
    for (const policy of policies) {
      for (const c of policy.conditional) {
        if (!c.test || !grantsAny(c.grants, keys, want)) continue;
        input ??= { resource: name, time: this.clock() };
        if (c.test(input) && collect([c.grants], keys, want, held)) return held;
      }
    }
    return held;
  }

  /** The grants configuration gives on `name`: the default owners and its project's owners. */
  private configured(name: string): Grants[] {
    if (this.projects.size === 0 || !name.startsWith('projects/')) return [this.defaultOwners];
    const end = name.indexOf('/', 9);
    const projectGrants = this.projects.get(name.slice(9, end < 0 ? undefined : end));
    return projectGrants ? [this.defaultOwners, projectGrants] : [this.defaultOwners];
  }

  private policyOf(doc: PolicyDoc): CompiledPolicy {
    let p = this.compiled.get(doc);
    if (!p) {
      p = compilePolicy(Array.isArray(doc.bindings) ? doc.bindings : []);
      this.compiled.set(doc, p);
    }
    return p;
  }
}

/** Moves every wanted permission some layer grants into `held`; true when nothing is left to find. */
function collect(layers: Grants[], keys: readonly string[], want: Set<string>, held: Set<string>): boolean {
  for (const layer of layers) {
    for (const key of keys) {
      const set = layer.get(key);
      if (!set) continue;
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

/** Whether some key of the principal is granted a permission in `want` by `grants`. */
function grantsAny(grants: Grants, keys: readonly string[], want: Set<string>): boolean {
  for (const key of keys) {
    const set = grants.get(key);
    if (set) for (const p of want) if (set.has(p)) return true;
  }
  return false;
}

export function iamConfigOf(config: Config): IamConfig {
  return {
    projectOwners: config.projectOwners,
    defaultOwners: config.defaultOwners,
    operators: config.operators,
    groups: config.groups,
  };
}
