/** The IAM tables: every authenticated route names a permission some role (or the operator list) grants. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEPLOYMENT_PERMISSIONS,
  isValidMember,
  KNOWN_PERMISSIONS,
  memberMatches,
  ROLES,
} from '../../../shared/access/roles.js';
import { ROUTES } from '../../../shared/api/routes.js';

test('every authenticated route but testIamPermissions checks a known permission', () => {
  for (const r of ROUTES) {
    const label = `${r.method} ${r.path} (${r.rpc})`;
    if (!r.authenticated) {
      assert.equal(r.permission, undefined, label);
      continue;
    }
    if (r.path.endsWith(':testIamPermissions')) {
      assert.equal(r.permission, undefined, label);
      continue;
    }
    assert.ok(r.permission, `${label} has no permission`);
    assert.ok(
      DEPLOYMENT_PERMISSIONS.has(r.permission) || KNOWN_PERMISSIONS.has(r.permission),
      `${label}: ${r.permission}`,
    );
  }
});

test('admin manages but cannot use keys; viewer only reads; owner holds everything', () => {
  const admin = new Set(ROLES['roles/cloudkms.admin']);
  assert.ok(!admin.has('cloudkms.cryptoKeyVersions.useToEncrypt'));
  assert.ok(!admin.has('cloudkms.cryptoKeyVersions.useToDecrypt'));
  assert.ok(admin.has('cloudkms.cryptoKeyVersions.destroy'));
  for (const p of ROLES['roles/cloudkms.viewer']!) assert.match(p, /\.(get|list|showEffective\w+)$/);
  assert.deepEqual(new Set(ROLES['roles/owner']), KNOWN_PERMISSIONS);
});

test('member forms and matching', () => {
  for (const m of [
    'user:a@b.com',
    'serviceAccount:x@p.iam.gserviceaccount.com',
    'group:g@b.com',
    'domain:b.com',
    'allUsers',
    'allAuthenticatedUsers',
  ]) {
    assert.ok(isValidMember(m), m);
  }
  for (const m of ['a@b.com', 'user:', 'user:nobody', 'domain:', 'everyone', 'users:a@b.com', 'domain:b']) {
    assert.ok(!isValidMember(m), m);
  }
  assert.ok(memberMatches('domain:b.com', 'user:a@b.com'));
  assert.ok(!memberMatches('domain:b.com', 'user:a@sub.b.com'));
  assert.ok(memberMatches('allAuthenticatedUsers', 'serviceAccount:x@p.iam.gserviceaccount.com'));
  assert.ok(!memberMatches('group:a@b.com', 'user:a@b.com'));
});

test("Google's signing and public-key roles grant what Google's permission lists say, and nothing to use other keys", () => {
  const has = (role: string) => new Set(ROLES[role]);
  const signer = has('roles/cloudkms.signer');
  assert.ok(signer.has('cloudkms.cryptoKeyVersions.useToSign'));
  assert.ok(!signer.has('cloudkms.cryptoKeyVersions.viewPublicKey'));
  assert.ok(!signer.has('cloudkms.cryptoKeyVersions.useToVerify'));
  const verifier = has('roles/cloudkms.verifier');
  assert.ok(verifier.has('cloudkms.cryptoKeyVersions.useToVerify'));
  assert.ok(verifier.has('cloudkms.cryptoKeyVersions.viewPublicKey'));
  assert.ok(!verifier.has('cloudkms.cryptoKeyVersions.useToSign'));
  assert.deepEqual(
    [...has('roles/cloudkms.publicKeyViewer')].filter((p) => p.startsWith('cloudkms.cryptoKeyVersions.')),
    ['cloudkms.cryptoKeyVersions.viewPublicKey'],
  );
  const operator = has('roles/cloudkms.cryptoOperator');
  for (const verb of ['useToEncrypt', 'useToDecrypt', 'useToSign', 'useToVerify', 'viewPublicKey']) {
    assert.ok(operator.has(`cloudkms.cryptoKeyVersions.${verb}`), verb);
  }
  assert.ok(operator.has('cloudkms.locations.generateRandomBytes'));
  assert.ok(!operator.has('cloudkms.cryptoKeys.create'));
  const admin = has('roles/cloudkms.admin');
  for (const verb of ['useToSign', 'useToVerify', 'viewPublicKey']) {
    assert.ok(!admin.has(`cloudkms.cryptoKeyVersions.${verb}`), `admin must not hold ${verb}`);
  }
  assert.ok(has('roles/cloudkms.importer').has('cloudkms.importJobs.useToImport'));
  assert.ok(isKnownRoleName('roles/cloudkms.protectedResourcesViewer'));
});

function isKnownRoleName(role: string): boolean {
  return Object.hasOwn(ROLES, role);
}
