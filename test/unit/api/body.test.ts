/** The request body as a proto3 JSON message (shared/api/body.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseBody } from '../../../shared/api/body.js';
import { RpcError } from '../../../shared/errors.js';

const invalid = (field?: string, message?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof RpcError, String(err));
  assert.equal(err.code, 'INVALID_ARGUMENT');
  if (message) assert.match(err.message, message);
  if (field) {
    const d = err.details[0];
    assert.ok(d && d['@type'] === 'type.googleapis.com/google.rpc.BadRequest', JSON.stringify(err.details));
    assert.equal(d.fieldViolations[0]?.field, field);
  }
  return true;
};

test('parseBody: empty, "", whitespace and {} are the empty message', () => {
  for (const raw of [undefined, '', '""', '  ', '\n""\n', '{}']) {
    assert.deepEqual(parseBody(raw === undefined ? undefined : Buffer.from(raw)), {});
  }
});

test('parseBody: snake_case becomes camelCase, except inside labels; odd names stay as sent', () => {
  const body = parseBody(
    Buffer.from(
      '{"version_template":{"protection_level":1},"labels":{"team_name":"a"},"plaintextCrc32c":"1","__proto__":{"x":1},"_x":1}',
    ),
  );
  assert.deepEqual(Object.keys(body), ['versionTemplate', 'labels', 'plaintextCrc32c', '__proto__', '_x']);
  assert.deepEqual(body.versionTemplate, { protectionLevel: 1 });
  assert.deepEqual(body.labels, { team_name: 'a' });
  assert.equal(
    Object.getPrototypeOf(body),
    Object.prototype,
    '"__proto__" is an own field, not the prototype',
  );
  assert.equal((body as Record<string, unknown>).x, undefined);
});

test('parseBody: refuses what is not a JSON object, and nesting deeper than 16', () => {
  for (const raw of ['[]', '1', 'null', 'true', '"x"', '{', '{"a":}', 'plaintext=abc']) {
    assert.throws(
      () => parseBody(Buffer.from(raw)),
      invalid(undefined, /^Invalid JSON payload received/),
      raw,
    );
  }
  const deep = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
  assert.doesNotThrow(() => parseBody(Buffer.from(deep(16))));
  assert.throws(() => parseBody(Buffer.from(deep(18))), invalid(undefined, /nested too deeply/));
});
