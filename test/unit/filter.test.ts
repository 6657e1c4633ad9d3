import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RpcError } from '../../shared/errors.js';
import { compileFilter, type Resource } from '../../shared/resources/filter.js';

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

const ALL = ['alpha', 'beta', 'gamma', 'delta'];

/** The short names of the fixture keys the filter keeps, in fixture order. */
function matching(filter: string | undefined): string[] {
  const predicate = compileFilter(filter);
  return KEYS.filter(predicate).map((key) => String(key.name).split('/').at(-1) ?? '');
}

/** Asserts that the filter is refused with INVALID_ARGUMENT at the given 1-based position, saying `fragment`. */
function assertRefused(filter: string, position: number, fragment: string): void {
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

describe('empty filters', () => {
  test('undefined, empty and blank filters match everything', () => {
    assert.deepEqual(matching(undefined), ALL);
    assert.deepEqual(matching(''), ALL);
    assert.deepEqual(matching(' \t\n '), ALL);
  });
});

describe('comparison operators', () => {
  test('= and != on enum names', () => {
    assert.deepEqual(matching('purpose=MAC'), ['gamma']);
    assert.deepEqual(matching('purpose = MAC'), ['gamma']);
    assert.deepEqual(matching('purpose!=MAC'), ['alpha', 'beta', 'delta']);
    assert.deepEqual(matching('purpose=mac'), [], '= is case-sensitive');
  });

  test('<, <=, >, >= on numbers', () => {
    assert.deepEqual(matching('weight<5'), ['alpha', 'delta']);
    assert.deepEqual(matching('weight<=3'), ['alpha']);
    assert.deepEqual(matching('weight>3'), ['beta', 'delta']);
    assert.deepEqual(matching('weight>=10'), ['beta']);
    assert.deepEqual(matching('weight=3.0'), ['alpha']);
    assert.deepEqual(matching('weight>-1'), ['alpha', 'beta', 'delta'], 'a leading - in a value is a sign');
    assert.deepEqual(matching('weight!=3'), ['beta', 'gamma', 'delta']);
    assert.deepEqual(matching('weight<abc'), [], 'a number does not compare with a word');
  });

  test('ordering on strings compares by code unit, decimal strings numerically', () => {
    assert.deepEqual(matching('primary.state<E'), ['beta', 'delta']);
    assert.deepEqual(matching('primary.state>=ENABLED'), ['alpha']);
    assert.deepEqual(matching('labels.cost-center>=7'), ['delta']);
    assert.deepEqual(matching('labels.cost-center>10'), []);
    assert.deepEqual(matching('labels.cost-center=7'), [], '= on strings stays exact');
    assert.deepEqual(matching('labels.cost-center=007'), ['delta']);
  });

  test('booleans', () => {
    assert.deepEqual(matching('importOnly=true'), ['beta']);
    assert.deepEqual(matching('importOnly=FALSE'), ['alpha']);
    assert.deepEqual(matching('importOnly!=true'), ['alpha', 'gamma', 'delta']);
    assert.deepEqual(matching('importOnly=yes'), []);
  });

  test('durations compare as durations', () => {
    assert.deepEqual(matching('rotationPeriod>100000s'), ['alpha']);
    assert.deepEqual(matching('rotationPeriod<"100000.5s"'), ['beta']);
    assert.deepEqual(matching('rotationPeriod=86400.000s'), ['beta']);
  });
});

describe('has (:)', () => {
  test('on strings: case-insensitive substring', () => {
    assert.deepEqual(matching('name:ALPHA'), ['alpha']);
    assert.deepEqual(matching('labels.team:alpha'), ['alpha', 'delta']);
    assert.deepEqual(matching('name:ring-1/'), ['alpha', 'gamma']);
    assert.deepEqual(matching('name:ring*BETA'), ['beta'], 'wildcards inside a has value');
  });

  test('on maps: the key exists', () => {
    assert.deepEqual(matching('labels:team'), ['alpha', 'beta', 'delta']);
    assert.deepEqual(matching('labels:cost-center'), ['delta']);
    assert.deepEqual(matching('labels:"note"'), ['beta']);
    assert.deepEqual(matching('labels:TEAM'), [], 'keys are exact');
    assert.deepEqual(matching('labels:constructor'), [], 'inherited properties are not keys');
    assert.deepEqual(matching('labels:__proto__'), []);
    assert.deepEqual(matching('labels:cost*'), ['delta'], 'a key glob');
  });

  test('on arrays: any element matches', () => {
    const field = 'keyAccessJustificationsPolicy.allowedAccessReasons';
    assert.deepEqual(matching(`${field}:CUSTOMER_INITIATED_ACCESS`), ['alpha']);
    assert.deepEqual(matching(`${field}:customer`), ['alpha']);
    assert.deepEqual(matching(`${field}:MODIFIED_CUSTOMER`), []);
    assert.deepEqual(matching(`${field}=GOOGLE_INITIATED_SERVICE`), ['alpha']);
    assert.deepEqual(matching(`${field}!=GOOGLE_INITIATED_SERVICE`), ['beta', 'gamma', 'delta']);
  });

  test('field:* means present and non-empty', () => {
    assert.deepEqual(matching('labels:*'), ['alpha', 'beta', 'delta'], 'an empty map is not present');
    assert.deepEqual(matching('primary:*'), ['alpha', 'beta', 'delta'], 'null is not present');
    assert.deepEqual(matching('weight:*'), ['alpha', 'beta', 'delta']);
    assert.deepEqual(matching('importOnly:*'), ['alpha', 'beta'], 'false is present');
    assert.deepEqual(matching('keyAccessJustificationsPolicy.allowedAccessReasons:*'), ['alpha']);
    assert.deepEqual(matching('labels.note:"*"'), ['beta']);
  });

  test('on numbers and booleans: equality', () => {
    assert.deepEqual(matching('weight:3'), ['alpha']);
    assert.deepEqual(matching('importOnly:true'), ['beta']);
  });
});

describe('NOT and -', () => {
  test('negate a restriction', () => {
    assert.deepEqual(matching('NOT purpose=MAC'), ['alpha', 'beta', 'delta']);
    assert.deepEqual(matching('-purpose=MAC'), ['alpha', 'beta', 'delta']);
    assert.deepEqual(matching('-labels:team'), ['gamma']);
    assert.deepEqual(matching('NOT NOT purpose=MAC'), ['gamma']);
    assert.deepEqual(matching('--purpose=MAC'), ['gamma']);
  });

  test('negate a parenthesised expression', () => {
    assert.deepEqual(matching('NOT(purpose=MAC OR importOnly=true)'), ['alpha', 'delta']);
    assert.deepEqual(matching('-(labels.team=alpha OR labels.team=beta)'), ['gamma', 'delta']);
  });

  test('binds tighter than AND and OR', () => {
    assert.deepEqual(matching('NOT purpose=MAC AND weight<5'), ['alpha', 'delta']);
    assert.deepEqual(matching('NOT labels:team OR weight=10'), ['beta', 'gamma']);
  });
});

describe('AND, OR, juxtaposition, parentheses', () => {
  test('AND and juxtaposition', () => {
    assert.deepEqual(matching('labels.team:alpha AND primary.state=ENABLED'), ['alpha']);
    assert.deepEqual(matching('labels.team:alpha primary.state=ENABLED'), ['alpha']);
    assert.deepEqual(matching('purpose=ENCRYPT_DECRYPT weight>3 labels:team'), ['beta', 'delta']);
  });

  test('OR', () => {
    assert.deepEqual(matching('labels.team=alpha OR labels.team=beta'), ['alpha', 'beta']);
    assert.deepEqual(matching('purpose=MAC OR importOnly=true OR weight=3.5'), ['beta', 'gamma', 'delta']);
  });

  test('OR binds tighter than AND (AIP-160)', () => {
    // a AND b OR c is a AND (b OR c): gamma has no team, so nothing matches. Usual precedence would give beta.
    assert.deepEqual(matching('purpose=MAC AND labels.team=alpha OR labels.team=beta'), []);
    // a OR b AND c is (a OR b) AND c.
    assert.deepEqual(matching('labels.team=beta OR labels.team=alpha AND purpose=MAC'), []);
    // Juxtaposition is an AND too: weight>1 AND (alpha OR beta).
    assert.deepEqual(matching('weight>1 labels.team=alpha OR labels.team=beta'), ['alpha', 'beta']);
  });

  test('parentheses override precedence', () => {
    assert.deepEqual(matching('(purpose=MAC AND labels:*) OR labels.team=beta'), ['beta']);
    assert.deepEqual(matching('(labels.team=beta OR labels.team=alpha) AND weight<5'), ['alpha']);
    assert.deepEqual(matching('((((purpose=MAC))))'), ['gamma']);
  });
});

describe('fields', () => {
  test('dotted sub-fields', () => {
    assert.deepEqual(matching('primary.state=ENABLED'), ['alpha']);
    assert.deepEqual(matching('versionTemplate.protectionLevel=EXTERNAL'), ['alpha']);
    assert.deepEqual(matching('versionTemplate.protectionLevel=EXTERNAL_VPC'), ['delta']);
    assert.deepEqual(matching('labels.team=alpha'), ['alpha']);
    assert.deepEqual(matching('labels.env=prod labels.team=alpha'), ['alpha']);
  });

  test('a path through an array looks in every element', () => {
    assert.deepEqual(matching('bindings.role=roles/cloudkms.viewer'), ['alpha']);
    assert.deepEqual(matching('bindings.members:OPS@example'), ['alpha']);
    assert.deepEqual(matching('bindings.role=roles/cloudkms.admin bindings.members=group:ops@example.com'), [
      'alpha',
    ]);
  });

  test('absent fields: comparisons are false, != is true, nothing throws', () => {
    assert.deepEqual(matching('missing=x'), []);
    assert.deepEqual(matching('missing!=x'), ALL);
    assert.deepEqual(matching('missing.deep.field<3'), []);
    assert.deepEqual(matching('missing:*'), []);
    assert.deepEqual(matching('NOT missing:*'), ALL);
    assert.deepEqual(matching('primary.state!=ENABLED'), ['beta', 'gamma', 'delta'], 'gamma has no primary');
    assert.deepEqual(matching('labels.team.sub=x'), [], 'a sub-field of a string is absent');
    assert.deepEqual(matching('labels=alpha'), [], 'a map is not equal to a word');
    assert.deepEqual(matching('labels.toString:*'), [], 'inherited properties are absent');
    assert.deepEqual(matching('rotationPeriod>1s'), ['alpha', 'beta']);
  });

  test('unusual resource values do not throw', () => {
    const odd: Resource = { labels: null, list: [null, [1, [2]], { a: 1 }], n: Number.NaN };
    assert.equal(compileFilter('labels.team=x')(odd), false);
    assert.equal(compileFilter('list=2')(odd), true);
    assert.equal(compileFilter('list.a=1')(odd), true);
    assert.equal(compileFilter('n>1 OR n<=1')(odd), false);
  });
});

describe('wildcards in = values', () => {
  test('glob matching of names', () => {
    assert.deepEqual(matching('name=*ring-1*'), ['alpha', 'gamma', 'delta'], 'ring-10 contains ring-1');
    assert.deepEqual(matching('name=*/keyRings/ring-1/*'), ['alpha', 'gamma']);
    assert.deepEqual(matching('name=projects/*/cryptoKeys/beta'), ['beta']);
    assert.deepEqual(matching('name=*ALPHA*'), [], '= globs are case-sensitive');
    assert.deepEqual(matching('name!=*ring-1*'), ['beta']);
    assert.deepEqual(matching('name=*'), ALL);
    assert.deepEqual(matching('labels.team=alph*a'), ['alpha']);
    assert.deepEqual(matching('labels.team=alpha*a'), [], 'prefix and suffix must not overlap');
    assert.deepEqual(matching('labels.team=a**a'), ['alpha']);
  });

  test('quoted values glob too, and \\* is a literal asterisk', () => {
    assert.deepEqual(matching('labels.pattern=a*b'), ['alpha', 'delta']);
    assert.deepEqual(matching('labels.pattern="a*b"'), ['alpha', 'delta']);
    assert.deepEqual(matching('labels.pattern="a\\*b"'), ['delta']);
  });

  test('regular-expression characters in values are literal', () => {
    const resource: Resource = { labels: { re: 'a.c(d)+[e]$' } };
    assert.equal(compileFilter('labels.re="a.c(d)+[e]$"')(resource), true);
    assert.equal(compileFilter('labels.re="a?c*"')(resource), false);
    assert.equal(compileFilter('labels.re="*(d)+*"')(resource), true);
    assert.equal(compileFilter('labels.re="abc(d)+[e]$"')(resource), false);
  });

  test('a pathological glob is matched quickly', () => {
    const filter = `labels.long=${'*a'.repeat(900)}*b`;
    const resource: Resource = { labels: { long: 'a'.repeat(5000) } };
    const started = performance.now();
    assert.equal(compileFilter(filter)(resource), false);
    assert.ok(performance.now() - started < 1000);
  });
});

describe('timestamps', () => {
  test('compare as instants when both sides are RFC 3339', () => {
    assert.deepEqual(matching('createTime > "2024-01-01T00:00:00Z"'), ['alpha', 'delta']);
    assert.deepEqual(matching('createTime<2024-01-01T00:00:00Z'), ['beta', 'gamma'], 'unquoted works too');
    assert.deepEqual(matching('createTime<"2023-12-31T23:30:00Z"'), ['gamma'], 'offsets are applied');
    assert.deepEqual(matching('createTime>="2023-12-31T20:00:00-03:00"'), ALL, 'gamma is exactly 23:00Z');
    assert.deepEqual(matching('createTime>"2023-12-31T20:00:00-03:00"'), ['alpha', 'beta', 'delta']);
  });

  test('to the nanosecond, equal across offsets', () => {
    assert.deepEqual(matching('createTime>"2024-03-01T12:00:00.123456788Z"'), ['alpha', 'delta']);
    assert.deepEqual(matching('createTime>"2024-03-01T12:00:00.123456789Z"'), ['delta']);
    assert.deepEqual(matching('createTime="2024-03-01T13:00:00.123456789+01:00"'), ['alpha']);
    assert.deepEqual(matching('createTime="2024-06-15T00:00:00.000Z"'), ['delta']);
  });

  test('impossible dates are not times and compare as text', () => {
    const resource: Resource = { t: '2023-02-29T00:00:00Z' };
    assert.equal(compileFilter('t="2023-03-01T00:00:00Z"')(resource), false);
    assert.equal(compileFilter('t<"2023-03-01T00:00:00Z"')(resource), true);
    // As times 2024-01-01T00:30:00+01:00 is earlier; as text it sorts after. An invalid hour makes it text.
    assert.equal(compileFilter('t<"2024-01-01T24:30:00+01:00"')({ t: '2023-12-31T23:45:00Z' }), true);
    assert.equal(compileFilter('t<"2024-01-01T00:30:00+01:00"')({ t: '2023-12-31T23:45:00Z' }), false);
  });
});

describe('quoted strings', () => {
  test('quotes, escapes, spaces and keywords as values', () => {
    assert.deepEqual(matching('purpose="MAC"'), ['gamma']);
    assert.deepEqual(matching('labels.note="Has Spaces \\"and\\" quotes"'), ['beta']);
    assert.deepEqual(matching('labels.note:"spaces \\"AND\\""'), ['beta']);
    assert.deepEqual(matching('labels.team="AND"'), []);
    assert.equal(compileFilter('a="x\\\\y"')({ a: 'x\\y' }), true);
    assert.equal(compileFilter('a="x\\ny"')({ a: 'x\ny' }), true);
    assert.equal(compileFilter('a="NOT"')({ a: 'NOT' }), true);
    assert.equal(compileFilter('a="x=y (z)"')({ a: 'x=y (z)' }), true);
    assert.equal(compileFilter('a=""')({ a: '' }), true);
  });

  test('a value word may contain ":" and "-" after its start', () => {
    assert.equal(compileFilter('member=user:ann@example.com')({ member: 'user:ann@example.com' }), true);
    assert.equal(compileFilter('id=key-1 n=-2')({ id: 'key-1', n: -2 }), true);
  });
});

describe('limits', () => {
  test('the longest filter is accepted', () => {
    const filter = `name=${'x'.repeat(1995)}`;
    assert.equal(filter.length, 2000);
    assert.deepEqual(matching(filter), []);
  });

  test('32 levels of nesting are accepted', () => {
    assert.deepEqual(matching(`${'('.repeat(32)}purpose=MAC${')'.repeat(32)}`), ['gamma']);
    assert.deepEqual(matching(`${'NOT '.repeat(32)}purpose=MAC`), ['gamma']);
  });
});

describe('syntax errors', () => {
  test('too long', () => {
    assertRefused(`name=${'x'.repeat(1996)}`, 2001, 'more than the maximum of 2000');
  });

  test('too deeply nested', () => {
    assertRefused(`${'('.repeat(33)}a=b${')'.repeat(33)}`, 33, 'more than 32 levels deep');
    assertRefused(`${'NOT '.repeat(33)}a=b`, 129, 'more than 32 levels deep');
    assertRefused(`${'-'.repeat(33)}a=b`, 33, 'more than 32 levels deep');
    assertRefused(`${'(NOT '.repeat(17)}a=b${')'.repeat(17)}`, 81, 'more than 32 levels deep');
  });

  test('unterminated string', () => {
    assertRefused('labels.team="alpha', 13, 'the quoted string that starts here is not closed');
    assertRefused('a="x\\', 3, 'is not closed');
    assertRefused('a="x\\"', 3, 'is not closed');
  });

  test('a lone !', () => {
    assertRefused('a ! b', 3, 'unexpected "!"');
    assertRefused('NOT a=b !', 9, 'unexpected "!"');
  });

  test('missing value', () => {
    assertRefused('labels.team=', 13, 'expected a value after "=", found the end of the filter');
    assertRefused('a= AND b=c', 4, 'found AND. To match the word AND itself, quote it: a="AND"');
    assertRefused('(a=)', 4, 'expected a value after "=", found ")"');
    assertRefused('a<=>b', 4, 'expected a value after "<=", found ">"');
    assertRefused('a:(b)', 3, 'expected a value after ":", found "("');
  });

  test('missing operator', () => {
    assertRefused('labels.team', 12, 'expected an operator (=, !=, <, <=, >, >=, :) after "labels.team"');
    assertRefused('state ENABLED', 7, 'after "state", found "ENABLED"');
    assertRefused('a=b c', 6, 'after "c", found the end of the filter');
  });

  test('lower-case keywords', () => {
    assertRefused('a=b and c=d', 5, '"and" was read as a field name, because keywords are upper-case');
    assertRefused('a=b or c=d', 5, 'Write OR in capitals');
    assertRefused('not a=b', 1, 'Write NOT in capitals');
  });

  test('missing or bad field name', () => {
    assertRefused('=alpha', 1, 'expected a field name before "="');
    assertRefused('(:x)', 2, 'expected a field name before ":"');
    assertRefused('"labels"=x', 1, 'expected a field name, found the quoted string "labels"');
    assertRefused('labels..team=x', 1, '"labels..team" is not a valid field name');
    assertRefused('.a=1', 1, 'is not a valid field name');
    assertRefused('a.=1', 1, 'is not a valid field name');
    assertRefused('a=b && c=d', 5, '"&&" is not a valid field name');
    assertRefused('labels.*=x', 1, 'is not a valid field name');
  });

  test('parentheses', () => {
    assertRefused('()', 2, 'empty parentheses');
    assertRefused('state=ENABLED ()', 16, 'empty parentheses');
    assertRefused('(a=b', 5, 'expected ")" to close the "(" at position 1, found the end of the filter');
    assertRefused('(a=b OR (c=d)', 14, 'to close the "(" at position 1');
    assertRefused('(a=b c=', 8, 'expected a value after "="');
    assertRefused('a=b)', 4, 'unexpected ")" without a matching "("');
    assertRefused(')a=b', 1, 'expected a condition, found ")"');
  });

  test('dangling AND, OR, NOT and -', () => {
    assertRefused('a=b AND', 8, 'expected a condition after AND, found the end of the filter');
    assertRefused('a=b OR', 7, 'expected a condition after OR, found the end of the filter');
    assertRefused('AND a=b', 1, 'expected a condition, found AND');
    assertRefused('OR a=b', 1, 'expected a condition, found OR');
    assertRefused('a=b AND OR c=d', 9, 'expected a condition after AND, found OR');
    assertRefused('a=b OR AND c=d', 8, 'expected a condition after OR, found AND');
    assertRefused('NOT', 4, 'expected a condition after NOT');
    assertRefused('-', 2, 'expected a condition after "-"');
    assertRefused('a=b NOT)', 8, 'expected a condition after NOT, found ")"');
  });

  test('stray operators', () => {
    assertRefused('a=b=c', 4, 'unexpected "="');
    assertRefused('a=b :c', 5, 'unexpected ":"');
    assertRefused('a=b AND <c', 9, 'expected a condition after AND, found "<"');
  });

  test('wildcards with ordering operators', () => {
    assertRefused('createTime>*', 12, 'the wildcard "*" cannot be used with ">"');
    assertRefused('name<="a*"', 7, 'cannot be used with "<="');
  });

  test('positions count characters, not UTF-16 code units', () => {
    assertRefused('labels.team="😀" AND', 20, 'expected a condition after AND');
  });

  test('every message tells what to do', () => {
    assert.throws(
      () => compileFilter('labels.team='),
      (err: unknown) =>
        err instanceof RpcError &&
        err.message ===
          'Invalid filter at position 13: expected a value after "=", found the end of the filter. ' +
            'Filters look like: labels.team=alpha AND state=ENABLED',
    );
  });

  test('a filter that is not a string is refused', () => {
    const notAString = ['a=b', 'c=d'] as unknown as string;
    assert.throws(
      () => compileFilter(notAString),
      (err: unknown) => err instanceof RpcError && err.code === 'INVALID_ARGUMENT',
    );
  });
});
