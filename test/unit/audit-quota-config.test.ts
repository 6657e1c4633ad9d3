/**
 * OPENEKM_EKM_QUOTA and OPENEKM_AUDIT_DATA_ACCESS parsing, and which log each method's audit entry goes to.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { loadConfig } from '../../shared/config.js';
import { ConfigError } from '../../shared/errors.js';
import { EkmQuota } from '../../shared/quota/ekm-quota.js';

const base = {
  OPENEKM_ROOT_KEYS: `root-1:${randomBytes(32).toString('base64')}`,
  OPENEKM_TRUSTED_ISSUERS: JSON.stringify([{ issuer: 'https://i', audiences: ['a'], jwks: { keys: [] } }]),
};

test('the EKM quota defaults to 100 per second; projects can have their own', () => {
  assert.deepEqual(loadConfig(base).ekmQuota, {
    enabled: true,
    default: 100,
    projects: {},
    shards: 4,
    leaseSize: 0,
  });
  assert.equal(loadConfig({ ...base, OPENEKM_EKM_QUOTA: '{"enabled": false}' }).ekmQuota.enabled, false);
  const q = loadConfig({ ...base, OPENEKM_EKM_QUOTA: '{"default": 50, "projects": {"p1": 500}}' }).ekmQuota;
  assert.equal(q.default, 50);
  const quota = new EkmQuota(undefined as never, () => new Date(), q);
  assert.equal(quota.limitOf('p1'), 500);
  assert.equal(quota.limitOf('p2'), 50);
  assert.deepEqual(quota.shape(500), { shards: 4, leaseSize: 25 });
  assert.deepEqual(quota.shape(2), { shards: 2, leaseSize: 1 });
});

test('a bad OPENEKM_EKM_QUOTA stops start-up with an example of a good one', () => {
  for (const bad of ['{', '{"default": 0}', '{"default": 1.5}', '{"projects": {"p": "x"}}', '{"limit": 5}']) {
    assert.throws(
      () => loadConfig({ ...base, OPENEKM_EKM_QUOTA: bad }),
      (e: unknown) => e instanceof ConfigError && /OPENEKM_EKM_QUOTA.*\{"default": 100/s.test(e.message),
      bad,
    );
  }
});

test('OPENEKM_AUDIT_DATA_ACCESS switches Data Access entries', () => {
  assert.equal(loadConfig(base).auditDataAccess, true);
  assert.equal(loadConfig({ ...base, OPENEKM_AUDIT_DATA_ACCESS: 'false' }).auditDataAccess, false);
});
