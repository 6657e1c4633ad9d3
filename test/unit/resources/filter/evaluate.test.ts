/** List filters: what a compiled filter keeps (shared/resources/filter/evaluate.ts) and the checks before parsing. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RpcError } from '../../../../shared/errors.js';
import { compileFilter, type Resource } from '../../../../shared/resources/filter/evaluate.js';
import { ALL, assertRefused, matching } from './fixtures.js';

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

describe('limits', () => {
  test('the longest filter is accepted', () => {
    const filter = `name=${'x'.repeat(1995)}`;
    assert.equal(filter.length, 2000);
    assert.deepEqual(matching(filter), []);
  });
});

describe('syntax errors', () => {
  test('too long', () => {
    assertRefused(`name=${'x'.repeat(1996)}`, 2001, 'more than the maximum of 2000');
  });

  test('a filter that is not a string is refused', () => {
    const notAString = ['a=b', 'c=d'] as unknown as string;
    assert.throws(
      () => compileFilter(notAString),
      (err: unknown) => err instanceof RpcError && err.code === 'INVALID_ARGUMENT',
    );
  });
});
