/**
 * Evaluation of IAM conditions: a condition is parsed and type-checked once (parser.ts) and compiled to a test
 * that is run when a permission is checked. Pure: no I/O, no clock of its own (the caller passes the request
 * time). Evaluation cannot fail: every type was checked when the expression was parsed.
 */
import { classifyName, type ResourceKind } from '../../resources/names.js';
import {
  type Attribute,
  type ComparisonOperator,
  type Expr,
  KMS_SERVICE,
  parseCondition,
  type Value,
} from './parser.js';

/** What a condition is evaluated against. */
export interface ConditionInput {
  /** The full Cloud KMS resource name the permission is checked on, e.g. projects/p/locations/l/keyRings/r. */
  resource: string;
  /** The request time, epoch milliseconds. */
  time: number;
}

export type CompiledCondition = (input: ConditionInput) => boolean;

/**
 * Parses and type-checks `expression`; the result evaluates it. Throws ConditionError (its message names the
 * construct and where it is) for anything outside the supported subset.
 */
export function compileCondition(expression: string): CompiledCondition {
  const run = compile(parseCondition(expression));
  return (input) => run(input) === true;
}

const TYPE_NAMES: Record<ResourceKind, string> = {
  project: '',
  location: `${KMS_SERVICE}/Location`,
  ekmConfig: `${KMS_SERVICE}/EkmConfig`,
  ekmConnection: `${KMS_SERVICE}/EkmConnection`,
  keyRing: `${KMS_SERVICE}/KeyRing`,
  cryptoKey: `${KMS_SERVICE}/CryptoKey`,
  cryptoKeyVersion: `${KMS_SERVICE}/CryptoKeyVersion`,
  importJob: `${KMS_SERVICE}/ImportJob`,
};

/**
 * The resource.type of a Cloud KMS resource name ('' for a name that is none of them; projects are not resources
 * of this API). By the name's shape only: the permission check comes before the name's ids are validated.
 */
export function resourceTypeOf(name: string): string {
  const kind = classifyName(name)?.kind;
  return kind === undefined ? '' : TYPE_NAMES[kind];
}

const ATTRIBUTES: Record<Attribute, (input: ConditionInput) => Value> = {
  'request.time': (i) => i.time,
  'resource.name': (i) => i.resource,
  'resource.type': (i) => resourceTypeOf(i.resource),
  'resource.service': () => KMS_SERVICE,
};

const COMPARISONS: Record<ComparisonOperator, (a: Value, b: Value) => boolean> = {
  '==': (a, b) => a === b,
  '!=': (a, b) => a !== b,
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
};

function compile(e: Expr): (input: ConditionInput) => Value {
  switch (e.kind) {
    case 'literal': {
      const value = e.value;
      return () => value;
    }
    case 'attribute':
      return ATTRIBUTES[e.attribute];
    case 'not': {
      const operand = compile(e.operand);
      return (i) => !(operand(i) as boolean);
    }
    case 'and': {
      const [l, r] = [compile(e.left), compile(e.right)];
      return (i) => (l(i) as boolean) && (r(i) as boolean);
    }
    case 'or': {
      const [l, r] = [compile(e.left), compile(e.right)];
      return (i) => (l(i) as boolean) || (r(i) as boolean);
    }
    case 'compare': {
      const [l, r] = [compile(e.left), compile(e.right)];
      const test = COMPARISONS[e.op];
      return (i) => test(l(i), r(i));
    }
    case 'call': {
      const [receiver, arg] = [compile(e.receiver), compile(e.arg)];
      return e.method === 'startsWith'
        ? (i) => (receiver(i) as string).startsWith(arg(i) as string)
        : (i) => (receiver(i) as string).endsWith(arg(i) as string);
    }
  }
}
