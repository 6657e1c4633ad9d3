/** The route table and its matcher (shared/api/routes.ts, shared/api/match.ts), without a server or emulator. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findRoute, functionForPath, match } from '../../../shared/api/match.js';
import { ROUTES } from '../../../shared/api/routes.js';
import { RpcError } from '../../../shared/errors.js';

const LOC = '/v1/projects/p/locations/l';
const KEY = `${LOC}/keyRings/r/cryptoKeys/k`;

function notFound(re: RegExp) {
  return (err: unknown) => err instanceof RpcError && err.code === 'NOT_FOUND' && re.test(err.message);
}

test('every entry is reachable: a sample path of its template matches it and no other entry', () => {
  const seen = new Set<string>();
  for (const r of ROUTES) {
    const sample = r.path.replace(/\{\w+=([^}]*)\}/g, '$1').replace(/\*/g, 'x');
    const m = findRoute(r.method, sample);
    assert.equal(m?.route, r, `${r.method} ${r.path}`);
    const key = `${r.method} ${r.path}`;
    assert.ok(!seen.has(key), `duplicate entry ${key}`);
    seen.add(key);
  }
});

test('the bound name: the resource, the parent of a collection, or nothing', () => {
  assert.equal(findRoute('POST', `${KEY}:encrypt`)?.name, 'projects/p/locations/l/keyRings/r/cryptoKeys/k');
  assert.equal(findRoute('GET', `${KEY}/cryptoKeyVersions`)?.name, KEY.slice(4));
  assert.equal(
    findRoute('POST', `${KEY}/cryptoKeyVersions/7:destroy`)?.name,
    `${KEY.slice(4)}/cryptoKeyVersions/7`,
  );
  assert.equal(findRoute('GET', `${LOC}/ekmConfig`)?.name, 'projects/p/locations/l/ekmConfig');
  assert.equal(findRoute('GET', '/health/')?.name, '');
  // Percent-encoding is decoded before matching, as Google's front end does.
  assert.equal(
    findRoute('POST', `${LOC}/keyRings/r/cryptoKeys/k%3Aencrypt`)?.route.rpc.endsWith('.Encrypt'),
    true,
  );
});

test('each function serves only its own routes; the others learn where to go', () => {
  assert.equal(match('encrypt', 'POST', `${KEY}:encrypt`).route.fn, 'encrypt');
  assert.throws(
    () => match('keyAdmin', 'POST', `${KEY}:encrypt`),
    notFound(/served by the encrypt function/),
  );
  assert.equal(functionForPath(`${KEY}:decrypt`), 'decrypt');
  assert.equal(functionForPath('/health/status'), 'healthCheck');
  assert.equal(functionForPath(`${KEY}`), 'keyAdmin');
  assert.equal(functionForPath('/nowhere'), undefined);
});

test('unknown paths, methods and verbs are NOT_FOUND with what to do', () => {
  assert.throws(() => match('keyAdmin', 'GET', '/v1/elsewhere'), notFound(/is not part of this API/));
  assert.throws(() => match('keyAdmin', 'GET', '/v1/projects//locations/l/keyRings'), notFound(/not part/));
  assert.throws(() => match('keyAdmin', 'GET', '/v1/projects/%E0%A4%A/x'), notFound(/not part/));
  assert.throws(() => match('keyAdmin', 'DELETE', `${LOC}/keyRings/r`), notFound(/use GET/));
  assert.throws(() => match('keyAdmin', 'POST', `${LOC}/keyRings/r:frobnicate`), notFound(/:frobnicate/));
});

test('audit classification: admin writes to Admin Activity, reads and crypto to Data Access, health to none', () => {
  const audit = (method: string, path: string) => findRoute(method, path)?.route.audit;
  assert.equal(audit('POST', `${LOC}/keyRings/r/cryptoKeys`), 'admin');
  assert.equal(audit('POST', `${KEY}/cryptoKeyVersions/1:destroy`), 'admin');
  assert.equal(audit('POST', `${KEY}:encrypt`), 'data');
  assert.equal(audit('GET', `${LOC}/keyRings`), 'data');
  assert.equal(audit('POST', `${KEY}:setIamPolicy`), 'admin');
  assert.equal(audit('GET', `${KEY}:getIamPolicy`), 'data');
  assert.equal(audit('GET', '/health'), undefined);
  const set = findRoute('POST', `${KEY}:setIamPolicy`)!.route;
  assert.equal(set.rpc, 'google.iam.v1.IAMPolicy.SetIamPolicy');
  assert.equal(set.permission, 'cloudkms.cryptoKeys.setIamPolicy');
});
