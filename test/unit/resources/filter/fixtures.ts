/** The resources the list-filter tests filter, and their assertions. */
import assert from 'node:assert/strict';
import { RpcError } from '../../../../shared/errors.js';
import { compileFilter, type Resource } from '../../../../shared/resources/filter/evaluate.js';

const RING_1 = 'projects/p/locations/global/keyRings/ring-1';

/** Four CryptoKeys in the API's JSON shape. `weight` and `bindings` are test-only fields (a number, an array). */
const KEYS: Resource[] = [
  {
    name: `${RING_1}/cryptoKeys/alpha`,
    createTime: '2024-03-01T12:00:00.123456789Z',
    purpose: 'ENCRYPT_DECRYPT',
    primary: {
      name: `${RING_1}/cryptoKeys/alpha/cryptoKeyVersions/1`,
      state: 'ENABLED',
      protectionLevel: 'EXTERNAL',
    },
    versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
    labels: { team: 'alpha', env: 'prod', pattern: 'axxb' },
    rotationPeriod: '7776000s',
    importOnly: false,
    keyAccessJustificationsPolicy: {
      allowedAccessReasons: ['CUSTOMER_INITIATED_ACCESS', 'GOOGLE_INITIATED_SERVICE'],
    },
    weight: 3,
    bindings: [
      { role: 'roles/cloudkms.admin', members: ['user:ann@example.com'] },
      { role: 'roles/cloudkms.viewer', members: ['group:ops@example.com'] },
    ],
  },
  {
    name: 'projects/p/locations/global/keyRings/ring-2/cryptoKeys/beta',
    createTime: '2023-12-31T23:59:59Z',
    purpose: 'ENCRYPT_DECRYPT',
    primary: { state: 'DISABLED', protectionLevel: 'SOFTWARE' },
    versionTemplate: { protectionLevel: 'SOFTWARE', algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION' },
    labels: { team: 'beta', note: 'Has Spaces "and" quotes' },
    rotationPeriod: '86400s',
    importOnly: true,
    keyAccessJustificationsPolicy: { allowedAccessReasons: [] },
    weight: 10,
  },
  {
    // 2024-01-01T01:00:00+02:00 is 2023-12-31T23:00:00Z: earlier than beta although it sorts later as text.
    name: `${RING_1}/cryptoKeys/gamma`,
    createTime: '2024-01-01T01:00:00+02:00',
    purpose: 'MAC',
    labels: {},
    primary: null,
  },
  {
    name: 'projects/p/locations/global/keyRings/ring-10/cryptoKeys/delta',
    createTime: '2024-06-15T00:00:00Z',
    purpose: 'ENCRYPT_DECRYPT',
    primary: { state: 'DESTROY_SCHEDULED', protectionLevel: 'EXTERNAL_VPC' },
    versionTemplate: { protectionLevel: 'EXTERNAL_VPC', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
    labels: { team: 'Alpha-Ops', 'cost-center': '007', pattern: 'a*b' },
    weight: 3.5,
  },
];

export const ALL = ['alpha', 'beta', 'gamma', 'delta'];

/** The short names of the fixture keys the filter keeps, in fixture order. */
export function matching(filter: string | undefined): string[] {
  const predicate = compileFilter(filter);
  return KEYS.filter(predicate).map((key) => String(key.name).split('/').at(-1) ?? '');
}

/** Asserts that the filter is refused with INVALID_ARGUMENT at the given 1-based position, saying `fragment`. */
export function assertRefused(filter: string, position: number, fragment: string): void {
  assert.throws(
    () => compileFilter(filter),
    (err: unknown) => {
      assert.ok(err instanceof RpcError, `expected an RpcError, got ${String(err)}`);
      assert.equal(err.code, 'INVALID_ARGUMENT');
      assert.ok(
        err.message.startsWith(`Invalid filter at position ${position}: `),
        `message "${err.message}" should give position ${position}`,
      );
      assert.ok(err.message.includes(fragment), `message "${err.message}" should say "${fragment}"`);
      assert.deepEqual(err.details, [
        {
          '@type': 'type.googleapis.com/google.rpc.BadRequest',
          fieldViolations: [{ field: 'filter', description: err.message }],
        },
      ]);
      return true;
    },
  );
}
