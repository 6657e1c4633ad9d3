/** Resource names (shared/resources/names.ts): the one classifier and the parse functions built on it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resourceTypeOf } from '../../../shared/access/conditions/evaluate.js';
import { RpcError } from '../../../shared/errors.js';
import {
  classifyName,
  parseCryptoKeyName,
  parseCryptoKeyVersionName,
  parseEkmConfigName,
  parseEkmConnectionName,
  parseImportJobName,
  parseKeyRingName,
  parseLocationName,
} from '../../../shared/resources/names.js';

const LOC = 'projects/p/locations/l';
const RING = `${LOC}/keyRings/r`;
const KEY = `${RING}/cryptoKeys/k`;

test('classifyName: each kind of name and its parts', () => {
  assert.deepEqual(classifyName('projects/p'), { kind: 'project', project: 'p' });
  assert.deepEqual(classifyName(LOC), { kind: 'location', project: 'p', location: 'l' });
  assert.deepEqual(classifyName(`${LOC}/ekmConfig`), { kind: 'ekmConfig', project: 'p', location: 'l' });
  assert.deepEqual(classifyName(`${LOC}/ekmConnections/c`), {
    kind: 'ekmConnection',
    project: 'p',
    location: 'l',
    ekmConnection: 'c',
  });
  assert.deepEqual(classifyName(RING), { kind: 'keyRing', project: 'p', location: 'l', keyRing: 'r' });
  assert.deepEqual(classifyName(KEY), {
    kind: 'cryptoKey',
    project: 'p',
    location: 'l',
    keyRing: 'r',
    cryptoKey: 'k',
  });
  assert.deepEqual(classifyName(`${KEY}/cryptoKeyVersions/7`), {
    kind: 'cryptoKeyVersion',
    project: 'p',
    location: 'l',
    keyRing: 'r',
    cryptoKey: 'k',
    version: '7',
  });
});

test('import job names: classified, parsed with every id checked, typed for IAM conditions', () => {
  assert.deepEqual(classifyName(`${RING}/importJobs/j`), {
    kind: 'importJob',
    project: 'p',
    location: 'l',
    keyRing: 'r',
    importJob: 'j',
  });
  assert.equal(parseImportJobName(`${RING}/importJobs/j-1`).importJob, 'j-1');
  assert.equal(resourceTypeOf(`${RING}/importJobs/j`), 'cloudkms.googleapis.com/ImportJob');
  for (const bad of [`${RING}/importJobs/j!`, `${LOC}/keyRings/r!/importJobs/j`, `${RING}/importjobs/j`]) {
    assert.throws(
      () => parseImportJobName(bad, 'importJob'),
      (e: unknown) =>
        e instanceof RpcError &&
        e.code === 'INVALID_ARGUMENT' &&
        /not a valid (import job|key ring) name/.test(e.message),
      bad,
    );
  }
});

test('classifyName: the shape decides, ids are taken as they are', () => {
  assert.equal(classifyName('projects//locations/l/keyRings/')?.kind, 'keyRing');
  assert.equal(classifyName(`${LOC}/keyRings/${'x'.repeat(100)}`)?.kind, 'keyRing');
  assert.equal(classifyName(`${KEY}/cryptoKeyVersions/0`)?.kind, 'cryptoKeyVersion');
});

test('classifyName: anything else is undefined', () => {
  for (const name of [
    '',
    'projects',
    'project/p',
    '/projects/p',
    'projects/p/',
    'projects/p/locations',
    'projects/p/zones/l',
    'organizations/o/locations/l',
    `${LOC}/`,
    `${LOC}/ekmConfig/x`,
    `${LOC}/ekmconfig`,
    `${LOC}/keyRings`,
    `${LOC}/keyrings/r`,
    `${LOC}/ekmConnections`,
    `${LOC}/ekmConnections/c/cryptoKeys/k`,
    `${RING}/cryptoKeys`,
    `${RING}/cryptokeys/k`,
    `${RING}/importJobs`,
    `${RING}/importJobs/j/x`,
    `${KEY}/cryptoKeyVersions`,
    `${KEY}/versions/1`,
    `${KEY}/cryptoKeyVersions/1/x`,
    `${KEY}/cryptoKeyVersions/1/x/y`,
  ]) {
    assert.equal(classifyName(name), undefined, name);
  }
});

test('resource.type follows the classifier; projects and other names have none', () => {
  assert.equal(resourceTypeOf(`${LOC}/ekmConfig`), 'cloudkms.googleapis.com/EkmConfig');
  assert.equal(resourceTypeOf(`${LOC}/ekmConnections/c`), 'cloudkms.googleapis.com/EkmConnection');
  assert.equal(resourceTypeOf('projects/p'), '');
  assert.equal(resourceTypeOf(`${RING}/cryptokeys/k`), '');
  // Before validation: a name with a bad id still has the type of its shape.
  assert.equal(resourceTypeOf(`${LOC}/keyRings/${'x'.repeat(64)}`), 'cloudkms.googleapis.com/KeyRing');
});

/** Asserts INVALID_ARGUMENT on `field` with exactly this message. */
function refused(parse: () => unknown, message: string, field = 'name'): void {
  assert.throws(parse, (err: unknown) => {
    assert.ok(err instanceof RpcError, String(err));
    assert.equal(err.code, 'INVALID_ARGUMENT');
    assert.equal(err.message, message);
    assert.deepEqual(err.details, [
      {
        '@type': 'type.googleapis.com/google.rpc.BadRequest',
        fieldViolations: [{ field, description: message }],
      },
    ]);
    return true;
  });
}

const RING_SHAPE = 'projects/{project}/locations/{location}/keyRings/{keyRing}';
const KEY_SHAPE = `${RING_SHAPE}/cryptoKeys/{cryptoKey}`;
const LOC_SHAPE = 'projects/{project}/locations/{location}';

test('parse functions return the parts of a valid name, without the kind', () => {
  assert.deepEqual(parseLocationName(LOC), { project: 'p', location: 'l' });
  assert.deepEqual(parseEkmConfigName(`${LOC}/ekmConfig`), { project: 'p', location: 'l' });
  assert.deepEqual(parseEkmConnectionName(`${LOC}/ekmConnections/c`), {
    project: 'p',
    location: 'l',
    ekmConnection: 'c',
  });
  assert.deepEqual(parseKeyRingName(RING), { project: 'p', location: 'l', keyRing: 'r' });
  assert.deepEqual(parseCryptoKeyName(KEY), { project: 'p', location: 'l', keyRing: 'r', cryptoKey: 'k' });
  assert.deepEqual(parseCryptoKeyVersionName(`${KEY}/cryptoKeyVersions/12`), {
    project: 'p',
    location: 'l',
    keyRing: 'r',
    cryptoKey: 'k',
    version: '12',
  });
});

test('parse functions: id bounds', () => {
  const id63 = 'a'.repeat(63);
  assert.equal(parseKeyRingName(`${LOC}/keyRings/${id63}`).keyRing, id63);
  assert.equal(parseKeyRingName(`${LOC}/keyRings/A_z-9`).keyRing, 'A_z-9');
  assert.throws(() => parseKeyRingName(`${LOC}/keyRings/${id63}a`), /is not a valid key ring name/);
  refused(
    () => parseKeyRingName(`${LOC}/keyRings/r.1`),
    `Resource name "${LOC}/keyRings/r.1" is not a valid key ring name; expected "${RING_SHAPE}".`,
  );
  const v18 = '9'.repeat(18);
  assert.equal(parseCryptoKeyVersionName(`${KEY}/cryptoKeyVersions/${v18}`).version, v18);
  for (const bad of ['0', '01', `1${v18}`, '-1', '', 'x']) {
    assert.throws(
      () => parseCryptoKeyVersionName(`${KEY}/cryptoKeyVersions/${bad}`),
      /crypto key version/,
      bad,
    );
  }
  assert.throws(() => parseLocationName('projects/-p/locations/l'), /not a valid location name/);
  assert.throws(
    () => parseLocationName(`projects/p/locations/${'l'.repeat(64)}`),
    /not a valid location name/,
  );
  assert.equal(
    parseLocationName(`projects/${'p'.repeat(100)}/locations/${'l'.repeat(63)}`).location.length,
    63,
  );
});

test('parse functions: the message names the first wrong part from the end, with the field', () => {
  // Another kind of name, or the wrong length: the kind asked for.
  refused(
    () => parseCryptoKeyName(RING),
    `Resource name "${RING}" is not a valid crypto key name; expected "${KEY_SHAPE}".`,
  );
  refused(
    () => parseKeyRingName(`${LOC}/ekmConnections/c`, 'parent'),
    `Resource name "${LOC}/ekmConnections/c" is not a valid key ring name; expected "${RING_SHAPE}".`,
    'parent',
  );
  // A bad key ring id inside a crypto key name: the key ring part is named.
  refused(
    () => parseCryptoKeyName('projects/p/locations/l/keyRings/r!/cryptoKeys/k'),
    `Resource name "projects/p/locations/l/keyRings/r!" is not a valid key ring name; expected "${RING_SHAPE}".`,
  );
  // A bad project inside a version name: the location part is named.
  refused(
    () => parseCryptoKeyVersionName('projects/p!/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1'),
    `Resource name "projects/p!/locations/l" is not a valid location name; expected "${LOC_SHAPE}".`,
  );
  refused(
    () => parseEkmConfigName(`${LOC}/ekmConfigs`),
    `Resource name "${LOC}/ekmConfigs" is not a valid EKM config name; expected "${LOC_SHAPE}/ekmConfig".`,
  );
  refused(
    () => parseLocationName('projects/p'),
    `Resource name "projects/p" is not a valid location name; expected "${LOC_SHAPE}".`,
    'parent',
  );
  // Long names are cut in the message.
  const long = `${LOC}/keyRings/${'r'.repeat(100)}`;
  refused(
    () => parseKeyRingName(long),
    `Resource name "${long.slice(0, 80)}…" is not a valid key ring name; expected "${RING_SHAPE}".`,
  );
});
