/**
 * getIamPolicy, setIamPolicy and testIamPermissions on key rings, crypto keys, import jobs and EKM connections
 * (google.iam.v1). The permission
 * to call getIamPolicy/setIamPolicy is checked before these run (Gateway.handle); testIamPermissions needs none.
 * Policies are stored at `{resource}/iamPolicies/current` (shared/access/iam.ts); setIamPolicy is a
 * read-modify-write guarded by the etag.
 */
import { randomBytes } from 'node:crypto';
import { ConditionError } from '../access/conditions/error.js';
import { compileCondition } from '../access/conditions/evaluate.js';
import {
  type Authorizer,
  type Binding,
  type Condition,
  EMPTY_POLICY_ETAG,
  type PolicyDoc,
  policyPath,
} from '../access/iam.js';
import type { Caller } from '../access/identity.js';
import { isKnownRole, isValidMember, MEMBER_FORMS, ROLES } from '../access/roles.js';
import type { Deps } from '../context.js';
import { RpcError } from '../errors.js';
import { allowOnly, type Json, type JsonObject } from '../resources/fields.js';
import {
  parseCryptoKeyName,
  parseEkmConnectionName,
  parseImportJobName,
  parseKeyRingName,
} from '../resources/names.js';

/** Most members one policy may hold (Google's limit). */
const MAX_MEMBERS = 1500;

export interface PolicyJson {
  version: number;
  bindings?: Binding[];
  etag: string;
}

function checkName(name: string): void {
  const s = name.split('/');
  if (s.length === 6 && s[4] === 'ekmConnections') parseEkmConnectionName(name, 'resource');
  else if (s.length === 6) parseKeyRingName(name, 'resource');
  else if (s.length === 8 && s[6] === 'importJobs') parseImportJobName(name, 'resource');
  else parseCryptoKeyName(name, 'resource');
}

async function mustExist(deps: Deps, name: string): Promise<void> {
  if (!(await deps.store.get(name))) throw RpcError.notFound(name);
}

function hasConditions(bindings: readonly Binding[] | undefined): boolean {
  return Array.isArray(bindings) && bindings.some((b) => b.condition !== undefined);
}

/**
 * A policy as getIamPolicy answers it. As in Google IAM, a policy with conditional bindings must be requested
 * with requestedPolicyVersion 3 (INVALID_ARGUMENT otherwise, so that a client unaware of conditions cannot read
 * and rewrite it without them), and a policy without conditions is version 1 whatever was requested.
 */
function render(doc: PolicyDoc | undefined, requested: number): PolicyJson {
  if (!doc) return { version: 1, etag: EMPTY_POLICY_ETAG };
  const conditional = hasConditions(doc.bindings);
  if (conditional && requested < 3) {
    throw RpcError.invalidArgument(
      'This policy has conditional bindings; request it with options.requestedPolicyVersion=3.',
      'options.requestedPolicyVersion',
    );
  }
  const policy: PolicyJson = { version: conditional ? 3 : 1, etag: doc.etag };
  if (doc.bindings.length > 0) policy.bindings = doc.bindings;
  return policy;
}

function requestedVersion(raw: string | null): number {
  if (raw === null || raw === '' || raw === '0') return 1;
  if (raw === '1' || raw === '3') return Number(raw);
  throw RpcError.invalidArgument(
    `options.requestedPolicyVersion "${raw.slice(0, 20)}" is invalid: use 1 or 3.`,
    'options.requestedPolicyVersion',
  );
}

export async function getIamPolicy(deps: Deps, name: string, rawVersion: string | null): Promise<PolicyJson> {
  checkName(name);
  const version = requestedVersion(rawVersion);
  const [resource, doc] = await Promise.all([
    deps.store.get(name),
    deps.store.get<PolicyDoc>(policyPath(name)),
  ]);
  if (!resource) throw RpcError.notFound(name);
  return render(doc, version);
}

function str(v: Json | undefined, field: string): string {
  if (typeof v !== 'string') throw RpcError.invalidArgument(`${field} must be a string.`, field);
  return v;
}

function parseCondition(raw: Json | undefined, field: string): Condition | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw RpcError.invalidArgument(`${field} must be an object {expression, title, description}.`, field);
  }
  allowOnly(raw, ['expression', 'title', 'description', 'location'], field);
  const expression = str(raw.expression, `${field}.expression`);
  if (expression.trim() === '') {
    throw RpcError.invalidArgument(`${field}.expression must not be empty.`, `${field}.expression`);
  }
  try {
    compileCondition(expression);
  } catch (err) {
    if (!(err instanceof ConditionError)) throw err;
    throw RpcError.invalidArgument(
      `${field}.expression cannot be evaluated by OpenEKM: ${err.message}. OpenEKM evaluates a subset of CEL (docs/iam.md, "Conditions") and refuses the rest rather than store a condition it cannot check.`,
      `${field}.expression`,
    );
  }
  const c: Condition = { expression };
  if (raw.title !== undefined) c.title = str(raw.title, `${field}.title`);
  if (raw.description !== undefined) c.description = str(raw.description, `${field}.description`);
  return c;
}

/** Validates a google.iam.v1.Policy from a setIamPolicy request; every problem names its field. */
function parsePolicy(raw: Json | undefined): {
  version: number;
  bindings: Binding[];
  etag?: string;
  /** The version the caller sent (1 when absent or 0). */
  sentVersion: number;
} {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw RpcError.invalidArgument(
      'The request must hold a "policy" object {version, bindings, etag}.',
      'policy',
    );
  }
  allowOnly(raw, ['version', 'bindings', 'etag', 'auditConfigs'], 'policy');
  if (raw.auditConfigs !== undefined && !(Array.isArray(raw.auditConfigs) && raw.auditConfigs.length === 0)) {
    throw RpcError.invalidArgument(
      'policy.auditConfigs is not supported: OpenEKM writes audit logs for every operation already.',
      'policy.auditConfigs',
    );
  }
  const v = raw.version ?? 0;
  if (v !== 0 && v !== 1 && v !== 3) {
    throw RpcError.invalidArgument(
      `policy.version ${JSON.stringify(v)} is invalid: use 1 or 3.`,
      'policy.version',
    );
  }
  const rawBindings = raw.bindings ?? [];
  if (!Array.isArray(rawBindings)) {
    throw RpcError.invalidArgument('policy.bindings must be a list of {role, members}.', 'policy.bindings');
  }
  const byKey = new Map<string, Binding>();
  let members = 0;
  rawBindings.forEach((b, i) => {
    const field = `policy.bindings[${i}]`;
    if (!b || typeof b !== 'object' || Array.isArray(b)) {
      throw RpcError.invalidArgument(`${field} must be an object {role, members, condition}.`, field);
    }
    allowOnly(b, ['role', 'members', 'condition'], field);
    const role = str(b.role, `${field}.role`);
    if (!isKnownRole(role)) {
      throw RpcError.invalidArgument(
        `${field}.role "${role.slice(0, 80)}" is not a role OpenEKM knows; use one of ${Object.keys(ROLES).join(', ')}.`,
        `${field}.role`,
      );
    }
    if (!Array.isArray(b.members) || b.members.length === 0) {
      throw RpcError.invalidArgument(
        `${field}.members must be a non-empty list of members.`,
        `${field}.members`,
      );
    }
    const list = b.members.map((m, j) => {
      const mf = `${field}.members[${j}]`;
      if (typeof m !== 'string' || !isValidMember(m)) {
        throw RpcError.invalidArgument(
          `${mf} ${JSON.stringify(m).slice(0, 80)} is not a valid member; use ${MEMBER_FORMS}.`,
          mf,
        );
      }
      return m;
    });
    const condition = parseCondition(b.condition, `${field}.condition`);
    if (condition && v !== 3) {
      throw RpcError.invalidArgument(
        `${field} has a condition, which needs policy.version 3; set "version": 3.`,
        'policy.version',
      );
    }
    // Bindings with the same role and condition are merged, members deduplicated, as Google IAM does.
    const key = JSON.stringify([role, condition ?? null]);
    const existing = byKey.get(key);
    const merged = new Set([...(existing?.members ?? []), ...list]);
    members += merged.size - (existing?.members.length ?? 0);
    const binding: Binding = { role, members: [...merged] };
    if (condition) binding.condition = condition;
    byKey.set(key, binding);
  });
  if (members > MAX_MEMBERS) {
    throw RpcError.invalidArgument(
      `The policy has ${members} members; at most ${MAX_MEMBERS} are allowed. Use group: or domain: members.`,
      'policy.bindings',
    );
  }
  const bindings = [...byKey.values()];
  // As in Google IAM: a policy is version 3 exactly when it has conditional bindings.
  const out: { version: number; bindings: Binding[]; etag?: string; sentVersion: number } = {
    version: hasConditions(bindings) ? 3 : 1,
    bindings,
    sentVersion: v === 3 ? 3 : 1,
  };
  if (raw.etag !== undefined && raw.etag !== '') out.etag = str(raw.etag, 'policy.etag');
  return out;
}

/** Etags are bytes in base64: clients may send them back in either alphabet, with or without padding (gcloud). */
function sameEtag(sent: string, current: string): boolean {
  return Buffer.from(sent, 'base64').equals(Buffer.from(current, 'base64'));
}

/** The (role, condition) → members grants of a policy, to tell which grants a new policy adds. */
function grantKeys(bindings: readonly Binding[] | undefined): Set<string> {
  const out = new Set<string>();
  for (const b of bindings ?? []) {
    for (const m of b.members ?? []) {
      out.add(JSON.stringify([b.role, b.condition?.expression ?? null, m.toLowerCase()]));
    }
  }
  return out;
}

/**
 * Separation of duties (OPENEKM_IAM_SEPARATION_OF_DUTIES): every role a new policy grants to a member that the
 * current policy does not grant it must consist of permissions the caller itself holds on the resource, so that
 * an administrator cannot hand itself (or anyone) use of keys it has no use of.
 */
async function checkSeparationOfDuties(
  deps: Deps,
  caller: Caller,
  name: string,
  current: readonly Binding[] | undefined,
  next: readonly Binding[],
): Promise<void> {
  const before = grantKeys(current);
  const added = new Set<string>();
  for (const b of next) {
    if (
      b.members.some(
        (m) => !before.has(JSON.stringify([b.role, b.condition?.expression ?? null, m.toLowerCase()])),
      )
    ) {
      added.add(b.role);
    }
  }
  for (const role of added) {
    const perms = ROLES[role] ?? [];
    const held = await deps.authorizer.held(caller, name, perms);
    const missing = perms.filter((p) => !held.has(p));
    if (missing.length > 0) {
      throw RpcError.permissionDenied(
        `Separation of duties is on (OPENEKM_IAM_SEPARATION_OF_DUTIES): ${caller.principal} cannot grant ${role} on ${name} because it does not hold ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ` and ${missing.length - 3} more` : ''} there itself. Ask a principal who holds the role (e.g. an owner) to grant it.`,
      );
    }
  }
}

export async function setIamPolicy(
  deps: Deps,
  name: string,
  body: JsonObject,
  caller?: Caller,
): Promise<PolicyJson> {
  checkName(name);
  allowOnly(body, ['policy', 'updateMask']);
  if (body.updateMask !== undefined) {
    const mask = str(body.updateMask, 'updateMask')
      .split(',')
      .map((f) => f.trim())
      .filter(Boolean);
    const bad = mask.find((f) => !['bindings', 'etag', 'version'].includes(f));
    if (bad)
      throw RpcError.invalidArgument(
        `updateMask field "${bad.slice(0, 40)}" cannot be set; use bindings, etag.`,
        'updateMask',
      );
  }
  const policy = parsePolicy(body.policy);
  const path = policyPath(name);
  const doc: PolicyDoc = {
    version: policy.version,
    bindings: policy.bindings,
    etag: randomBytes(12).toString('base64'),
    updateTime: deps.now().toISOString(),
  };
  try {
    await deps.store.transaction(async (tx) => {
      if (!(await tx.get(name))) throw RpcError.notFound(name);
      const current = await tx.get<PolicyDoc>(path);
      if (policy.etag !== undefined && !sameEtag(policy.etag, current?.etag ?? EMPTY_POLICY_ETAG)) {
        throw RpcError.aborted(
          'The policy was changed since you read it (its etag no longer matches). Read it again with getIamPolicy, apply your change to that, and set it again.',
        );
      }
      // Google IAM: changing a policy that has conditional bindings needs version 3. Without an etag the caller
      // overwrites unconditionally (conditions included), as Google IAM allows.
      if (policy.etag !== undefined && policy.sentVersion < 3 && hasConditions(current?.bindings)) {
        throw RpcError.invalidArgument(
          'The policy has conditional bindings: set it with "version": 3 (read it with options.requestedPolicyVersion=3).',
          'policy.version',
        );
      }
      if (deps.config.iamSeparationOfDuties && caller) {
        await checkSeparationOfDuties(deps, caller, name, current?.bindings, policy.bindings);
      }
      tx.set(path, doc);
    });
  } finally {
    deps.cache.invalidate(path);
  }
  return render(doc, 3);
}

export async function testIamPermissions(
  deps: Deps,
  authorizer: Authorizer,
  caller: Caller,
  name: string,
  body: JsonObject,
): Promise<{ permissions?: string[] }> {
  checkName(name);
  allowOnly(body, ['permissions']);
  const raw = body.permissions ?? [];
  if (!Array.isArray(raw) || raw.length > 100) {
    throw RpcError.invalidArgument(
      'permissions must be a list of at most 100 permission names.',
      'permissions',
    );
  }
  const asked = raw.map((p, i) => {
    if (typeof p !== 'string' || !/^[a-z][a-zA-Z0-9]*(\.[a-zA-Z0-9]+){2}$/.test(p)) {
      throw RpcError.invalidArgument(
        `permissions[${i}] ${JSON.stringify(p).slice(0, 80)} is not a permission name; use e.g. "cloudkms.cryptoKeys.get" (no wildcards).`,
        `permissions[${i}]`,
      );
    }
    return p;
  });
  const held = await authorizer.held(caller, name, asked);
  // Only a caller who holds something on the resource learns whether it exists.
  if (held.size > 0) await mustExist(deps, name);
  const permissions = asked.filter((p, i) => held.has(p) && asked.indexOf(p) === i);
  return permissions.length > 0 ? { permissions } : {};
}
