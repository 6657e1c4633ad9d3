/**
 * The Terraform deployment (infra/*.tf) and the code must not drift apart. Terraform is not run here: every
 * infra/*.tf file is parsed with @cdktf/hcl2json and checked against what the code declares or reads —
 *
 * - every function the code registers (shared/api/routes.ts FUNCTION_NAMES, plus any `functions.http('…')` /
 *   `functions.cloudEvent('…')` registration in functions/*.ts) is deployed with that entry point;
 * - the URL map sends a path of every route to the function that owns it;
 * - the environment variables loadConfig() cannot start without are set, the other OPENEKM_* names the
 *   configuration reads are set or listed in infra/README.md as left at their defaults, and every *_FILE points into a mounted
 *   secret;
 * - every secret is declared, mounted by the functions that list it, and readable by exactly those;
 * - the Firestore indexes and TTL policies the code's queries need exist;
 * - each function has its own service account, and nothing is public except the HTTP functions behind the load
 *   balancer.
 *
 * Each check returns a list of problems, so the negative tests at the end can show that breaking a parsed copy
 * of the infrastructure makes the checker report it.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from '@cdktf/hcl2json';
import { findRoute, functionForPath } from '../../shared/api/match.js';
import { FUNCTION_NAMES, JWKS_PATH, ROUTES, type Route } from '../../shared/api/routes.js';
import { loadConfig } from '../../shared/config.js';
import { ConfigError } from '../../shared/errors.js';

type Json = any;

interface Infra {
  resource: Record<string, Record<string, Json>>;
  locals: Record<string, Json>;
  variable: Record<string, Json>;
  output: Record<string, Json>;
}

const ROOT = new URL('../../', import.meta.url).pathname;
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((e) => {
    const p = join(dir, e);
    return statSync(join(ROOT, p)).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

async function loadInfra(): Promise<Infra> {
  const infra: Infra = { resource: {}, locals: {}, variable: {}, output: {} };
  const files = readdirSync(join(ROOT, 'infra')).filter((f) => f.endsWith('.tf'));
  assert.ok(files.length > 0, 'infra/ has no .tf files');
  for (const f of files) {
    const j = (await parse(f, read(`infra/${f}`))) as Json;
    for (const [type, byName] of Object.entries<Json>(j.resource ?? {})) {
      infra.resource[type] ??= {};
      for (const [name, blocks] of Object.entries<Json>(byName)) {
        assert.equal(infra.resource[type][name], undefined, `${type}.${name} is declared twice`);
        infra.resource[type][name] = blocks[0];
      }
    }
    for (const l of j.locals ?? []) Object.assign(infra.locals, l);
    for (const [name, blocks] of Object.entries<Json>(j.variable ?? {})) infra.variable[name] = blocks[0];
    for (const [name, blocks] of Object.entries<Json>(j.output ?? {})) infra.output[name] = blocks[0];
  }
  return infra;
}

// --- A very small evaluator for the expression forms infra/ uses -----------------------------------------------

/** A Terraform interpolation of `e`, as hcl2json writes it. */
const interp = (e: string) => `\${${e}}`;

/** The expression inside "${…}", or undefined for a literal. */
function expr(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^\$\{([\s\S]*)\}$/.exec(v);
  return m ? m[1]!.replace(/\s+/g, ' ').trim() : undefined;
}

/**
 * The map a for_each names: `local.x`, or the comprehension
 * `{ for k, v in local.x : k => v if v.field }` / `… if v.field == "value"`.
 */
function evalMap(infra: Infra, value: unknown): Record<string, Json> {
  const e = expr(value);
  if (e === undefined) throw new Error(`expected an expression, got ${JSON.stringify(value)}`);
  const local = /^local\.(\w+)$/.exec(e);
  if (local) {
    const v = infra.locals[local[1]!];
    if (typeof v === 'string') return evalMap(infra, v);
    if (!v || typeof v !== 'object') throw new Error(`local.${local[1]} is not a literal map`);
    return v;
  }
  const comp =
    /^\{ ?for (\w+), (\w+) in local\.(\w+) : \1 => \2(?: if \2\.(\w+)(?: == "([^"]*)")?)? ?\}$/.exec(e);
  if (comp) {
    const [, , , source, field, equals] = comp;
    const from = evalMap(infra, `\${local.${source}}`);
    return Object.fromEntries(
      Object.entries(from).filter(
        ([, v]) => field === undefined || (equals === undefined ? v[field!] === true : v[field!] === equals),
      ),
    );
  }
  throw new Error(`unsupported for_each expression: ${e} (teach test/infra/terraform.test.ts evalMap)`);
}

/** An attribute of a for_each resource for one key: literals, each.key, each.value.x, `each.value.x == "v" ? "a" : "b"`. */
function evalEach(value: unknown, key: string, item: Json): unknown {
  const e = expr(value);
  if (e === undefined) return value;
  if (e === 'each.key') return key;
  const field = /^each\.value\.(\w+)$/.exec(e);
  if (field) return item[field[1]!];
  const cond = /^each\.value\.(\w+) == "([^"]*)" \? "([^"]*)" : "([^"]*)"$/.exec(e);
  if (cond) return item[cond[1]!] === cond[2] ? cond[3] : cond[4];
  return value;
}

/** The key of `type.name[each.key]` / `type.name["key"]` in a reference such as ${google_x.fn["encrypt"].id}. */
function refKey(value: unknown, type: string, name: string, attr: string): string | undefined {
  const e = expr(value);
  if (!e) return undefined;
  const m = new RegExp(`^${type}\\.${name}\\[(?:"([^"]+)"|(each\\.key))\\]\\.${attr}$`).exec(e);
  return m ? (m[1] ?? 'each.key') : undefined;
}

function resource(infra: Infra, type: string, name: string): Json {
  const r = infra.resource[type]?.[name];
  if (!r) throw new Error(`infra/ declares no ${type}.${name}`);
  return r;
}

const FN = 'google_cloudfunctions2_function';

/** Function key → its deployed shape, evaluated from the for_each resource. */
function deployedFunctions(infra: Infra): Map<string, { entryPoint: unknown; ingress: unknown; item: Json }> {
  const fn = resource(infra, FN, 'fn');
  const out = new Map<string, { entryPoint: unknown; ingress: unknown; item: Json }>();
  for (const [key, item] of Object.entries(evalMap(infra, fn.for_each))) {
    out.set(key, {
      entryPoint: evalEach(fn.build_config[0].entry_point, key, item),
      ingress: evalEach(fn.service_config[0].ingress_settings, key, item),
      item,
    });
  }
  return out;
}

// --- What the code declares -------------------------------------------------------------------------------------

interface Code {
  /** Entry point → `http` or `cloudEvent`, from the registrations in functions/*.ts. */
  registered: Map<string, 'http' | 'cloudEvent'>;
  functionNames: readonly string[];
  /** The major Node version of package.json's engines. */
  nodeMajor: string;
}

function readCode(): Code {
  const registered = new Map<string, 'http' | 'cloudEvent'>();
  for (const f of sourceFiles('functions')) {
    for (const m of read(f).matchAll(/\b(http|cloudEvent)\(\s*['"]([A-Za-z0-9_]+)['"]/g)) {
      registered.set(m[2]!, m[1] as 'http' | 'cloudEvent');
    }
  }
  const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
  return { registered, functionNames: FUNCTION_NAMES, nodeMajor: /(\d+)/.exec(engines)![1]! };
}

// --- Checks -----------------------------------------------------------------------------------------------------

function checkFunctions(infra: Infra, code: Code): string[] {
  const problems: string[] = [];
  const deployed = deployedFunctions(infra);
  const byEntryPoint = new Map([...deployed].map(([k, d]) => [d.entryPoint, { key: k, ...d }]));
  const expected = new Set([...code.functionNames, ...code.registered.keys()]);
  for (const name of expected) {
    const d = byEntryPoint.get(name);
    if (!d) {
      problems.push(`function ${name} is not deployed (no ${FN} with entry point "${name}")`);
      continue;
    }
    const kind = code.registered.get(name) ?? 'http';
    const trigger = d.item.trigger;
    if (kind === 'http' && trigger !== 'http')
      problems.push(`${name} is an HTTP function but deployed as ${trigger}`);
    if (kind === 'cloudEvent' && trigger !== 'pubsub')
      problems.push(`${name} is a CloudEvent function but has no Pub/Sub trigger`);
  }
  for (const [key, d] of deployed) {
    if (key !== d.entryPoint)
      problems.push(`function key ${key} deploys entry point ${String(d.entryPoint)}`);
    if (!code.registered.has(String(d.entryPoint)))
      problems.push(`${key}: entry point ${String(d.entryPoint)} is not registered by functions/*.ts`);
  }
  const fn = resource(infra, FN, 'fn');
  if (expr(fn.build_config[0].runtime) !== 'var.runtime')
    problems.push('the functions do not use var.runtime');
  const runtime = infra.variable.runtime?.default;
  if (runtime !== `nodejs${code.nodeMajor}`)
    problems.push(`var.runtime defaults to ${runtime}, package.json engines ask for Node ${code.nodeMajor}`);
  const trigger = fn.dynamic?.event_trigger?.[0];
  if (!trigger || !/each\.value\.trigger == "pubsub"/.test(expr(trigger.for_each) ?? ''))
    problems.push('Pub/Sub functions get no event_trigger');
  else {
    const t = trigger.content[0];
    if (t.event_type !== 'google.cloud.pubsub.topic.v1.messagePublished')
      problems.push(`event trigger type ${t.event_type}`);
    if (!/google_pubsub_topic\.probe\.id/.test(trigger.for_each))
      problems.push('the trigger is not the probe topic');
  }
  resource(infra, 'google_pubsub_topic', 'probe');
  return problems;
}

/** A concrete path of a route's template (`{name=projects/*}` → `projects/x`), that the table matches to it. */
function samplePath(route: Route): string | undefined {
  const path = route.path.replace(/\{\w+=([^}]*)\}/g, '$1').replace(/\*/g, 'x');
  return findRoute(route.method, path)?.route === route ? path : undefined;
}

/** Google's URL-map path template → RegExp: `*` one segment, `**` any number, `{v=…}` captures. */
function templateRegExp(template: string): RegExp {
  const src = template
    .split(/(\{[^}]*\}|\*\*|\*)/)
    .map((part) => {
      if (part === '**' || /^\{\w+=\*\*\}$/.test(part)) return '.*';
      if (part === '*' || /^\{\w+(=\*)?\}$/.test(part)) return '[^/]+';
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${src}$`);
}

/** The function key the URL map sends `path` to. */
function routeOf(infra: Infra, path: string): string | undefined {
  const map = resource(infra, 'google_compute_url_map', 'front');
  const hostRule = map.host_rule?.find((h: Json) => h.hosts.includes('*'));
  const matcher = map.path_matcher?.find((m: Json) => m.name === hostRule?.path_matcher);
  if (!matcher) return refKey(map.default_service, 'google_compute_backend_service', 'fn', 'id');
  const rules = [...(matcher.route_rules ?? [])].sort((a: Json, b: Json) => a.priority - b.priority);
  for (const rule of rules) {
    const hit = (rule.match_rules ?? []).some(
      (m: Json) =>
        (m.full_path_match !== undefined && m.full_path_match === path) ||
        (m.prefix_match !== undefined && path.startsWith(m.prefix_match)) ||
        (m.path_template_match !== undefined && templateRegExp(m.path_template_match).test(path)),
    );
    if (hit) return refKey(rule.service, 'google_compute_backend_service', 'fn', 'id');
  }
  for (const pr of matcher.path_rule ?? []) {
    if (pr.paths.some((p: string) => (p.endsWith('/*') ? path.startsWith(p.slice(0, -1)) : p === path)))
      return refKey(pr.service, 'google_compute_backend_service', 'fn', 'id');
  }
  return refKey(matcher.default_service, 'google_compute_backend_service', 'fn', 'id');
}

function checkRouting(infra: Infra): string[] {
  const problems: string[] = [];
  // backend fn[k] → NEG fn[k] → function fn[k]: the key names the function all the way down.
  const backend = resource(infra, 'google_compute_backend_service', 'fn');
  const neg = resource(infra, 'google_compute_region_network_endpoint_group', 'fn');
  if (
    refKey(backend.backend?.[0]?.group, 'google_compute_region_network_endpoint_group', 'fn', 'id') !==
    'each.key'
  )
    problems.push('backend service fn[k] does not use NEG fn[k]');
  if (refKey(neg.cloud_run?.[0]?.service, FN, 'fn', 'name') !== 'each.key')
    problems.push('NEG fn[k] does not point at the Cloud Run service of function fn[k]');
  if (expr(neg.for_each) !== expr(backend.for_each))
    problems.push('the NEGs and backends cover different functions');
  const fronted = new Set(Object.keys(evalMap(infra, backend.for_each)));
  for (const route of ROUTES) {
    const path = samplePath(route);
    if (!path) {
      problems.push(`no sample path for route ${route.method} ${route.path}`);
      continue;
    }
    const to = routeOf(infra, path);
    if (to !== route.fn)
      problems.push(`${route.method} ${path} is routed to ${to}, but ${route.fn} serves it`);
    else if (!fronted.has(to)) problems.push(`${to} has no backend service`);
  }
  // The URL map's own tests (which Google checks on every change) must agree with the code and with the map.
  const tests = resource(infra, 'google_compute_url_map', 'front').test ?? [];
  if (tests.length === 0) problems.push('the URL map has no test blocks');
  for (const t of tests) {
    const want = refKey(t.service, 'google_compute_backend_service', 'fn', 'id');
    const owner = functionForPath(t.path);
    if (owner !== want)
      problems.push(`URL map test ${t.path} expects ${want}, but the code has ${owner} serve it`);
    if (routeOf(infra, t.path) !== want)
      problems.push(`URL map test ${t.path} expects ${want}, the map disagrees`);
  }
  return problems;
}

/** `merge(var.a, local.b, …)` or `local.b` → the literal env map (later arguments win; vars are the operator's extras). */
function functionEnv(infra: Infra): Record<string, unknown> {
  const fn = resource(infra, FN, 'fn');
  let e = expr(fn.service_config[0].environment_variables);
  const local = e && /^local\.(\w+)$/.exec(e);
  if (local && typeof infra.locals[local[1]!] === 'string') e = expr(infra.locals[local[1]!]);
  const merged: Record<string, unknown> = {};
  const args = e && /^merge\((.*)\)$/.exec(e);
  for (const a of args ? args[1]!.split(',').map((s) => s.trim()) : [e ?? '']) {
    const l = /^local\.(\w+)$/.exec(a);
    if (l) Object.assign(merged, infra.locals[l[1]!]);
    else if (!/^var\.\w+$/.test(a)) throw new Error(`unsupported environment expression ${a}`);
  }
  return merged;
}

/** OPENEKM_* names the configuration reads: shared/config.ts and the endpoint parser it calls. */
function configNames(): string[] {
  const text = read('shared/config.ts') + read('shared/ekm/endpoints.ts');
  return [...new Set([...text.matchAll(/\bOPENEKM_[A-Z0-9_]+\b/g)].map((m) => m[0]))].sort();
}

/** The smallest environment loadConfig() accepts, and proof that each of its names is needed. */
function requiredNames(names: string[]): string[][] {
  const minimal: Record<string, string> = {
    OPENEKM_ROOT_KEYS: `root-1:${Buffer.alloc(32, 1).toString('base64')}`,
    OPENEKM_TRUSTED_ISSUERS: JSON.stringify([{ issuer: 'https://i', audiences: ['a'], jwks: { keys: [] } }]),
  };
  loadConfig(minimal); // throws (and fails the test) if the code now needs more
  return Object.keys(minimal).map((name) => {
    const alternatives = [name, `${name}_FILE`].filter((n) => n === name || names.includes(n));
    const without = Object.fromEntries(Object.entries(minimal).filter(([k]) => !alternatives.includes(k)));
    assert.throws(() => loadConfig(without), ConfigError, `${name} turned out to be optional`);
    return alternatives;
  });
}

/** The OPENEKM_* names infra/README.md lists under "Settings left at the code's defaults". */
function leftAtDefaults(readme: string): string[] {
  const section = /^#+ Settings left at the code's defaults\n([\s\S]*?)(?=^#)/m.exec(readme)?.[1] ?? '';
  return [...section.matchAll(/`(OPENEKM_[A-Z0-9_]+)`/g)].map((m) => m[1]!);
}

function checkEnvironment(infra: Infra, names: string[], required: string[][], optional: string[]): string[] {
  const problems: string[] = [];
  const env = functionEnv(infra);
  for (const alternatives of required) {
    if (!alternatives.some((n) => n in env))
      problems.push(`required ${alternatives.join(' or ')} is not set`);
  }
  for (const name of names) {
    if (name in env) continue;
    if (!optional.includes(name))
      problems.push(
        `${name} is read by the code but neither set in infra/ nor listed in infra/README.md as left at its default`,
      );
  }
  for (const name of optional) {
    if (!names.includes(name)) problems.push(`infra/README.md lists ${name}, which the code no longer reads`);
    if (name in env)
      problems.push(`infra/README.md lists ${name} as left at its default, but infra/ sets it`);
  }
  for (const name of Object.keys(env)) {
    if (name.startsWith('OPENEKM_') && !names.includes(name))
      problems.push(`${name} is set but the code never reads it`);
  }
  if ('OPENEKM_SIGNING_KEYS_FILE' in env || 'OPENEKM_SIGNING_KEYS' in env) {
    for (const n of ['OPENEKM_GATEWAY_IDENTITY', 'OPENEKM_GATEWAY_ISSUER'])
      if (!(n in env)) problems.push(`${n} must be set with the signing keys`);
  }
  if (!/google_service_account\.scheduler\.email/.test(String(env.OPENEKM_OPERATORS)))
    problems.push("OPENEKM_OPERATORS does not contain the scheduler's service account");
  if (!/local\.google_issuer/.test(String(env.OPENEKM_TRUSTED_ISSUERS)))
    problems.push("OPENEKM_TRUSTED_ISSUERS does not trust Google's ID tokens (the scheduler's OIDC token)");
  return problems;
}

function checkSecrets(infra: Infra): string[] {
  const problems: string[] = [];
  const env = functionEnv(infra);
  const fn = resource(infra, FN, 'fn');
  const functions = evalMap(infra, fn.for_each);
  const mounts = infra.locals.static_secret_mounts as Record<string, Json>;
  const norm = (v: unknown) => (typeof v === 'string' ? v.replace(/\s+/g, ' ').trim() : String(v));

  // Declared secrets behind the mounts.
  for (const [id, m] of Object.entries(mounts)) {
    const e = /^google_secret_manager_secret\.(\w+)\.secret_id$/.exec(expr(m.secret) ?? '');
    if (!e || !infra.resource.google_secret_manager_secret?.[e[1]!])
      problems.push(`secret mount ${id} names no declared google_secret_manager_secret`);
  }
  const ekm = infra.locals.ekm_credential_mounts;
  if (
    !/group = "ekm_credentials"/.test(norm(ekm)) ||
    !/google_secret_manager_secret\.ekm_credential\[/.test(ekm)
  )
    problems.push('EKM credential secrets are not mounted as group ekm_credentials');

  // Every *_FILE variable is a file of a mount every function has.
  for (const [name, value] of Object.entries(env)) {
    if (!name.endsWith('_FILE')) continue;
    const m = Object.entries(mounts).find(([, s]) => `${s.mount_path}/${s.file}` === value);
    if (!m) {
      problems.push(`${name}=${String(value)} is not a mounted secret file`);
      continue;
    }
    for (const [key, f] of Object.entries(functions)) {
      if (!f.secrets.includes(m[1].group)) problems.push(`${key} reads ${name} but does not mount ${m[0]}`);
    }
  }
  // Root keys are required by every function (loadConfig refuses to start without them).
  for (const [key, f] of Object.entries(functions)) {
    if (!f.secrets.includes('root_keys')) problems.push(`${key} does not mount the root keys`);
    for (const g of f.secrets)
      if (!Object.values(mounts).some((s) => s.group === g) && g !== 'ekm_credentials')
        problems.push(`${key} lists unknown secret group ${g}`);
  }

  // Mounted ⇔ readable: both come from the same per-function selection.
  const perFunction =
    '{ for name, f in local.functions : name => { for id, m in local.secret_mounts : id => m if contains(f.secrets, m.group) } }';
  if (norm(expr(infra.locals.secret_mounts_by_function)) !== perFunction)
    problems.push(`local.secret_mounts_by_function is not ${perFunction}`);
  if (!/for name, mounts in local\.secret_mounts_by_function/.test(norm(infra.locals.secret_readers)))
    problems.push('local.secret_readers is not derived from local.secret_mounts_by_function');
  if (
    expr(fn.service_config[0].dynamic?.secret_volumes?.[0]?.for_each) !==
    'local.secret_mounts_by_function[each.key]'
  )
    problems.push('the functions do not mount local.secret_mounts_by_function[each.key]');
  const readers = resource(infra, 'google_secret_manager_secret_iam_member', 'readers');
  if (expr(readers.for_each) !== 'local.secret_readers')
    problems.push('secret readers are not local.secret_readers');
  if (expr(readers.secret_id) !== 'each.value.secret') problems.push('secret readers grant another secret');
  if (!/google_service_account\.fn\[each\.value\.function\]\.email/.test(readers.member))
    problems.push("secret readers are not the function's own service account");
  if (readers.role !== 'roles/secretmanager.secretAccessor')
    problems.push(`secret readers get ${readers.role}`);

  // No other way to read secrets.
  for (const [type, byName] of Object.entries(infra.resource)) {
    for (const [name, r] of Object.entries(byName)) {
      if (!/_iam_(member|binding|policy)$/.test(type)) continue;
      const grants = [r.role, r.policy_data, r.for_each].map(String).join(' ');
      if (
        `${type}.${name}` !== 'google_secret_manager_secret_iam_member.readers' &&
        /secretmanager/.test(grants)
      )
        problems.push(`${type}.${name} grants Secret Manager access outside the readers`);
    }
  }
  return problems;
}

/** Collection-group queries in the code: Store.findAtMost('collection', 'field', …) and collectionGroup('c').where('f'. */
function codeQueries(): { collection: string; field: string; where: string }[] {
  const found: { collection: string; field: string; where: string }[] = [];
  for (const f of sourceFiles('shared')) {
    const text = read(f);
    for (const m of text.matchAll(/\.findAtMost(?:<[^(]*?>)?\(\s*'(\w+)',\s*'(\w+)'/g))
      found.push({ collection: m[1]!, field: m[2]!, where: f });
    for (const m of text.matchAll(/collectionGroup\(\s*'(\w+)'\s*\)\s*\.where\(\s*'(\w+)'/g))
      found.push({ collection: m[1]!, field: m[2]!, where: f });
  }
  return found;
}

/** Collections whose documents carry expireAt for a TTL policy: `*_COLLECTION = '…'` in a file that writes expireAt for a TTL. */
function codeTtl(): { collection: string; field: string; where: string }[] {
  const found: { collection: string; field: string; where: string }[] = [];
  for (const f of sourceFiles('shared')) {
    const text = read(f);
    if (!/\bexpireAt\b/.test(text) || !/\bTTL\b/.test(text)) continue;
    for (const m of text.matchAll(/_COLLECTION = '(\w+)'/g))
      found.push({ collection: m[1]!, field: 'expireAt', where: f });
  }
  return found;
}

function checkFirestore(
  infra: Infra,
  queries: ReturnType<typeof codeQueries>,
  ttl: ReturnType<typeof codeTtl>,
): string[] {
  const problems: string[] = [];
  const db = resource(infra, 'google_firestore_database', 'main');
  if (db.type !== 'FIRESTORE_NATIVE') problems.push(`the database is ${db.type}, not FIRESTORE_NATIVE`);
  const fields = Object.values(infra.resource.google_firestore_field ?? {});
  for (const q of queries) {
    const f = fields.find((x) => x.collection === q.collection && x.field === q.field);
    const ok = f?.index_config?.[0]?.indexes?.some(
      (i: Json) => i.query_scope === 'COLLECTION_GROUP' && i.order === 'ASCENDING',
    );
    if (!ok) problems.push(`no collection-group index on ${q.collection}.${q.field} (queried in ${q.where})`);
  }
  for (const t of ttl) {
    const f = fields.find((x) => x.collection === t.collection && x.field === t.field);
    if (!f?.ttl_config) problems.push(`no TTL policy on ${t.collection}.${t.field} (written in ${t.where})`);
  }
  return problems;
}

function checkIdentities(infra: Infra): string[] {
  const problems: string[] = [];
  const fn = resource(infra, FN, 'fn');
  const sa = resource(infra, 'google_service_account', 'fn');
  const functions = evalMap(infra, fn.for_each);
  if (expr(sa.for_each) !== expr(fn.for_each))
    problems.push('service accounts and functions have different for_each');
  if (
    refKey(fn.service_config[0].service_account_email, 'google_service_account', 'fn', 'email') !== 'each.key'
  )
    problems.push('a function does not run as its own service account fn[each.key]');
  if (!/each\.key/.test(sa.account_id)) problems.push('service account ids do not depend on the function');
  const ids = Object.keys(functions).map((k) => k.toLowerCase());
  if (new Set(ids).size !== ids.length) problems.push('two functions would get the same service account id');

  const datastore = resource(infra, 'google_project_iam_member', 'datastore');
  if (datastore.role !== 'roles/datastore.user') problems.push(`Firestore access is ${datastore.role}`);
  const withFirestore = Object.keys(evalMap(infra, datastore.for_each)).sort();
  const wanted = Object.entries(functions)
    .filter(([, f]) => f.firestore === true)
    .map(([k]) => k)
    .sort();
  if (withFirestore.join() !== wanted.join())
    problems.push(`Firestore access for ${withFirestore.join()}, declared for ${wanted.join()}`);
  for (const [type, byName] of Object.entries(infra.resource)) {
    for (const [name, r] of Object.entries(byName)) {
      if (
        /roles\/datastore\./.test(String(r.role)) &&
        `${type}.${name}` !== 'google_project_iam_member.datastore'
      )
        problems.push(`${type}.${name} grants ${r.role}`);
    }
  }
  return problems;
}

function checkExposure(infra: Infra): string[] {
  const problems: string[] = [];
  const deployed = deployedFunctions(infra);
  let publicFunctions = new Set<string>();
  for (const [type, byName] of Object.entries(infra.resource)) {
    for (const [name, r] of Object.entries(byName)) {
      const members = [r.member, ...(r.members ?? [])].map(String);
      if (!members.some((m) => m === 'allUsers' || m === 'allAuthenticatedUsers')) continue;
      if (type !== 'google_cloud_run_service_iam_member' || r.role !== 'roles/run.invoker') {
        problems.push(`${type}.${name} makes something public`);
        continue;
      }
      if (refKey(r.service, FN, 'fn', 'name') !== 'each.key') {
        problems.push(`${type}.${name} is public on something other than the fronted functions`);
        continue;
      }
      publicFunctions = new Set([...publicFunctions, ...Object.keys(evalMap(infra, r.for_each))]);
    }
  }
  for (const [key, d] of deployed) {
    const isPublic = publicFunctions.has(key);
    if (isPublic && d.item.trigger !== 'http')
      problems.push(`${key} is public but not behind the load balancer`);
    if (isPublic && d.ingress !== 'ALLOW_INTERNAL_AND_GCLB')
      problems.push(`${key} is public and its ingress is ${String(d.ingress)}, not the load balancer only`);
    if (!isPublic && d.ingress !== 'ALLOW_INTERNAL_ONLY' && d.ingress !== 'ALLOW_INTERNAL_AND_GCLB')
      problems.push(`${key} has ingress ${String(d.ingress)}`);
    if (d.item.trigger === 'http' && !isPublic)
      problems.push(`${key} cannot be invoked through the load balancer`);
  }
  return problems;
}

function checkScheduler(infra: Infra): string[] {
  const problems: string[] = [];
  const job = resource(infra, 'google_cloud_scheduler_job', 'probe_http');
  const target = job.http_target[0];
  if (target.uri !== `${interp('local.base_url')}${interp('var.scheduled_path')}`)
    problems.push(`the job calls ${target.uri}`);
  if (target.http_method !== 'POST') problems.push('the job does not POST');
  const oidc = target.oidc_token?.[0];
  if (expr(oidc?.service_account_email) !== 'google_service_account.scheduler.email')
    problems.push("the job's OIDC token is not the scheduler service account's");
  if (
    expr(oidc?.audience) !== 'local.base_url' ||
    !(infra.locals.google_issuer?.audiences ?? []).includes(interp('local.base_url'))
  )
    problems.push("the job's token audience is not an audience OpenEKM trusts");
  const v = infra.variable.scheduled_path;
  const allowed: string[] =
    v?.validation?.[0]?.condition?.match(/"\/[^"]+"/g)?.map((s: string) => s.slice(1, -1)) ?? [];
  for (const path of [v?.default, ...allowed]) {
    const route = findRoute('POST', path)?.route;
    if (!route) problems.push(`scheduled path ${path} is not a POST route of the code`);
    if (route && route.fn !== 'healthCheck') problems.push(`scheduled path ${path} is served by ${route.fn}`);
  }
  if (!allowed.includes('/health/tasks:run'))
    problems.push('/health/tasks:run is no longer allowed as scheduled_path');
  const pubsub = resource(infra, 'google_cloud_scheduler_job', 'probe_pubsub');
  if (expr(pubsub.pubsub_target?.[0]?.topic_name) !== 'google_pubsub_topic.probe.id')
    problems.push('the Pub/Sub job does not publish to the probe topic');
  return problems;
}

function checkDocumentation(infra: Infra, readme: string): string[] {
  const problems: string[] = [];
  for (const [name, v] of Object.entries(infra.variable)) {
    if (typeof v.description !== 'string' || v.description.length < 10)
      problems.push(`variable ${name} has no description`);
    if (!readme.includes(`\`${name}\``)) problems.push(`variable ${name} is not in infra/README.md's table`);
  }
  for (const [name, o] of Object.entries(infra.output)) {
    if (typeof o.description !== 'string') problems.push(`output ${name} has no description`);
  }
  const id = infra.output.gateway_identity?.value;
  if (!String(id?.jwks_url).endsWith(JWKS_PATH))
    problems.push(`gateway_identity.jwks_url is not …${JWKS_PATH}`);
  for (const k of ['issuer', 'subject', 'email', 'audience'])
    if (!id?.[k]) problems.push(`gateway_identity has no ${k}`);
  if (!infra.output.base_url) problems.push('no base_url output');
  return problems;
}

// --- Tests ------------------------------------------------------------------------------------------------------

const infra = await loadInfra();
const code = readCode();
const names = configNames();
const required = requiredNames(names);
const queries = codeQueries();
const ttl = codeTtl();
const readme = read('infra/README.md');
const optional = leftAtDefaults(readme);

const all = (i: Infra) => [
  ...checkFunctions(i, code),
  ...checkRouting(i),
  ...checkEnvironment(i, names, required, optional),
  ...checkSecrets(i),
  ...checkFirestore(i, queries, ttl),
  ...checkIdentities(i),
  ...checkExposure(i),
  ...checkScheduler(i),
  ...checkDocumentation(i, readme),
];

test('the code declares what the checks look for', () => {
  for (const n of FUNCTION_NAMES)
    assert.equal(code.registered.get(n), 'http', `functions/*.ts registers ${n}`);
  assert.ok(names.includes('OPENEKM_ROOT_KEYS') && names.includes('OPENEKM_EKM_ENDPOINTS'), names.join());
  assert.deepEqual(required, [['OPENEKM_ROOT_KEYS', 'OPENEKM_ROOT_KEYS_FILE'], ['OPENEKM_TRUSTED_ISSUERS']]);
  assert.ok(
    queries.some((q) => q.collection === 'cryptoKeyVersions' && q.field === 'destroyTime'),
    JSON.stringify(queries),
  );
  assert.ok(
    ttl.some((t) => t.collection === 'openekmQuota'),
    JSON.stringify(ttl),
  );
  assert.equal(
    templateRegExp('/v1/**:encrypt').test('/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k:encrypt'),
    true,
  );
  assert.equal(
    templateRegExp('/v1/**:encrypt').test('/v1/projects/p/locations/l/keyRings/r:encryptX'),
    false,
  );
});

test('every function the code registers is deployed with its entry point and trigger', () => {
  assert.deepEqual(checkFunctions(infra, code), []);
});

test('the URL map sends every route to the function that serves it', () => {
  assert.deepEqual(checkRouting(infra), []);
});

test('the environment the code needs is set on every function, the rest is documented', () => {
  assert.deepEqual(checkEnvironment(infra, names, required, optional), []);
});

test('secrets: declared, mounted where read, readable by exactly the functions that mount them', () => {
  assert.deepEqual(checkSecrets(infra), []);
});

test('Firestore: native mode, the collection-group indexes and TTL policies the code needs', () => {
  assert.deepEqual(checkFirestore(infra, queries, ttl), []);
});

test('each function has its own service account; Firestore access only where declared', () => {
  assert.deepEqual(checkIdentities(infra), []);
});

test('nothing is public except the HTTP functions, and those only through the load balancer', () => {
  assert.deepEqual(checkExposure(infra), []);
});

test('the scheduler calls an operator route of healthCheck with a token OpenEKM accepts', () => {
  assert.deepEqual(checkScheduler(infra), []);
});

test('every variable and output is described, the variables are in infra/README.md, the identity is output', () => {
  assert.deepEqual(checkDocumentation(infra, readme), []);
});

// --- The checks can fail ----------------------------------------------------------------------------------------

function broken(change: (i: Infra) => void): string[] {
  const copy = structuredClone(infra);
  change(copy);
  return all(copy);
}

test('negative: a function removed from the deployment is reported', () => {
  const problems = broken((i) => {
    delete i.locals.functions.decrypt;
  });
  assert.ok(
    problems.some((p) => p.includes('function decrypt is not deployed')),
    problems.join('\n'),
  );
  assert.ok(
    problems.some((p) => /decrypt has no backend service/.test(p)),
    problems.join('\n'),
  );
});

test('negative: a wrong entry point, a lost route rule, an index, a secret grant and a public probe are reported', () => {
  const cases: [string, (i: Infra) => void, RegExp][] = [
    [
      'stale function',
      (i) => {
        i.locals.functions.retired = { ...i.locals.functions.keyAdmin, entry_point: 'retired' };
      },
      /retired: entry point retired is not registered by functions\/\*\.ts/,
    ],
    [
      'entry point',
      (i) => {
        i.locals.functions.encrypt.entry_point = 'encrypt2';
      },
      /function encrypt is not deployed/,
    ],
    [
      'route rule',
      (i) => {
        const m = i.resource.google_compute_url_map!.front.path_matcher[0];
        m.route_rules = m.route_rules.filter((r: Json) => !/encrypt/.test(r.service));
      },
      /:encrypt is routed to keyAdmin, but encrypt serves it/,
    ],
    [
      'URL map test',
      (i) => {
        i.resource.google_compute_url_map!.front.test[0].service = interp(
          'google_compute_backend_service.fn["decrypt"].id',
        );
      },
      /URL map test .*:encrypt expects decrypt, but the code has encrypt serve it/,
    ],
    [
      'index',
      (i) => {
        delete i.resource.google_firestore_field!.version_destroy_time;
      },
      /no collection-group index on cryptoKeyVersions\.destroyTime/,
    ],
    [
      'TTL',
      (i) => {
        delete i.resource.google_firestore_field!.quota_expire_at;
      },
      /no TTL policy on openekmQuota\.expireAt/,
    ],
    [
      'root keys',
      (i) => {
        i.locals.functions.keyAdmin.secrets = ['signing_keys'];
      },
      /keyAdmin does not mount the root keys/,
    ],
    [
      'project-wide secret access',
      (i) => {
        i.resource.google_project_iam_member!.secrets = {
          role: 'roles/secretmanager.secretAccessor',
          member: 'x',
        };
      },
      /grants Secret Manager access outside the readers/,
    ],
    [
      'required env',
      (i) => {
        delete i.locals.gateway_env.OPENEKM_TRUSTED_ISSUERS;
      },
      /required OPENEKM_TRUSTED_ISSUERS is not set/,
    ],
    [
      'identity with the signing keys',
      (i) => {
        delete i.locals.gateway_env.OPENEKM_GATEWAY_ISSUER;
      },
      /OPENEKM_GATEWAY_ISSUER must be set with the signing keys/,
    ],
    [
      'public probe',
      (i) => {
        i.resource.google_cloud_run_service_iam_member!.probe_trigger.member = 'allUsers';
      },
      /public on something other than the fronted functions/,
    ],
    [
      'trigger',
      (i) => {
        i.locals.functions.encrypt.trigger = 'pubsub';
      },
      /encrypt is an HTTP function but deployed as pubsub/,
    ],
    [
      'shared account',
      (i) => {
        i.resource[FN]!.fn.service_config[0].service_account_email = interp(
          'google_service_account.fn["keyAdmin"].email',
        );
      },
      /does not run as its own service account/,
    ],
    [
      'undescribed variable',
      (i) => {
        delete i.variable.domain.description;
      },
      /variable domain has no description/,
    ],
  ];
  for (const [what, change, expected] of cases) {
    const problems = broken(change);
    assert.ok(
      problems.some((p) => expected.test(p)),
      `${what}: expected a problem matching ${expected}, got:\n${problems.join('\n')}`,
    );
  }
});
