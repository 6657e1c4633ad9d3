/** Names, a time and assertions shared by the IAM condition tests. */
import assert from 'node:assert/strict';
import { ConditionError } from '../../../../shared/access/conditions/error.js';
import { compileCondition } from '../../../../shared/access/conditions/evaluate.js';

export const RING = 'projects/p/locations/l/keyRings/r';
export const KEY = `${RING}/cryptoKeys/k`;
export const VERSION = `${KEY}/cryptoKeyVersions/1`;
export const T = Date.parse('2030-01-01T00:00:00Z');

export function run(expression: string, resource = KEY, time = T): boolean {
  return compileCondition(expression)({ resource, time });
}

export function refused(expression: string, message: string | RegExp, position?: number): void {
  assert.throws(
    () => compileCondition(expression),
    (err: unknown) => {
      assert.ok(err instanceof ConditionError, `${expression}: ${String(err)}`);
      if (typeof message === 'string')
        assert.ok(err.message.includes(message), `${expression}: ${err.message}`);
      else assert.match(err.message, message, expression);
      if (position !== undefined) assert.equal(err.position, position, `${expression}: ${err.message}`);
      return true;
    },
  );
}
