/** The IAM tables: every authenticated route names a permission some role (or the operator list) grants. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEPLOYMENT_PERMISSIONS,
  isValidMember,
  KNOWN_PERMISSIONS,
  memberMatches,
  ROLES,
} from '../../shared/access/roles.js';
import { ROUTES } from '../../shared/api/routes.js';

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
