/**
 * Stage 1, match: finds the route of a request in the route table by its path template (google.api.http syntax:
 * literal segments, `*` for one segment, `{var=…}` binding the resource name, `:verb` at the end). A path that is
 * ours but has no such method, or is served by another function, is answered NOT_FOUND with what to do instead.
 */
import { RpcError } from '../errors.js';
import { type FunctionName, ROUTES, type Route } from './routes.js';

interface Compiled {
  route: Route;
  /** Literal segments, or undefined where the template has `*`. */
  segments: (string | undefined)[];
  verb: string;
  /** The bound variable's segments [start, end), or start === end when the template binds nothing. */
  start: number;
  end: number;
}

/** `/v1/{name=projects/*}/keyRings:verb` → its segments, verb and the bound span. */
function compileTemplate(route: Route): Compiled {
  let path = route.path.replace(/^\//, '');
  let verb = '';
  const colon = path.lastIndexOf(':');
  if (colon > path.lastIndexOf('/') && colon > path.lastIndexOf('}')) {
    verb = path.slice(colon + 1);
    path = path.slice(0, colon);
  }
  const segments: (string | undefined)[] = [];
  let start = 0;
  let end = 0;
  for (const part of path.split(/(\{[^}]*\})/)) {
    if (part === '') continue;
    const binding = /^\{(\w+)=([^}]*)\}$/.exec(part);
    const parts = (binding ? binding[2]! : part).split('/').filter((s) => s !== '');
    if (binding) start = segments.length;
    for (const s of parts) segments.push(s === '*' ? undefined : s);
    if (binding) end = segments.length;
  }
  return { route, segments, verb, start, end };
}

const COMPILED = ROUTES.map(compileTemplate);
/** Routes by segment count, so a request compares against a handful of templates. */
const BY_LENGTH = new Map<number, Compiled[]>();
for (const c of COMPILED) {
  const list = BY_LENGTH.get(c.segments.length) ?? [];
  list.push(c);
  BY_LENGTH.set(c.segments.length, list);
}

export interface Matched {
  route: Route;
  /** The bound resource name ('' for routes that bind none). */
  name: string;
  verb: string;
}

interface Split {
  segments: string[];
  verb: string;
}

/** The decoded path as segments and a custom verb; undefined when it cannot be decoded. */
function split(path: string): Split | undefined {
  let p: string;
  try {
    p = decodeURIComponent(path);
  } catch {
    return undefined;
  }
  p = p.replace(/^\/+/, '').replace(/\/$/, '');
  let verb = '';
  const colon = p.indexOf(':', p.lastIndexOf('/') + 1);
  if (colon >= 0) {
    verb = p.slice(colon + 1);
    p = p.slice(0, colon);
  }
  return { segments: p.split('/'), verb };
}

function fits(c: Compiled, segments: string[]): boolean {
  for (let i = 0; i < segments.length; i++) {
    const want = c.segments[i];
    const got = segments[i]!;
    if (got === '' || (want !== undefined && want !== got)) return false;
  }
  return true;
}

/** Every route whose template has the path's shape, whatever its method and verb. */
function candidates(s: Split): Compiled[] {
  return (BY_LENGTH.get(s.segments.length) ?? []).filter((c) => fits(c, s.segments));
}

/** The route of `method path` regardless of function; undefined when there is none. */
export function findRoute(method: string, path: string): Matched | undefined {
  const s = split(path);
  if (!s) return undefined;
  const c = candidates(s).find((x) => x.verb === s.verb && x.route.method === method);
  return c && { route: c.route, name: s.segments.slice(c.start, c.end).join('/'), verb: s.verb };
}

/** The function that serves a path (any method), as the cloud's URL map routes it; undefined when none does. */
export function functionForPath(path: string): FunctionName | undefined {
  const s = split(path);
  if (!s) return undefined;
  return candidates(s).find((x) => x.verb === s.verb)?.route.fn;
}

/** The route of a request to function `fn`, or NOT_FOUND saying what is wrong with the path or method. */
export function match(fn: FunctionName, method: string, path: string): Matched {
  const shown = path.slice(0, 200);
  const s = split(path);
  const shaped = s ? candidates(s) : [];
  if (!s || shaped.length === 0) {
    throw new RpcError(
      'NOT_FOUND',
      `The path ${shown} is not part of this API. Paths look like /v1/projects/{project}/locations/{location}/keyRings.`,
    );
  }
  const withVerb = shaped.filter((x) => x.verb === s.verb);
  const c = withVerb.find((x) => x.route.method === method);
  if (!c) {
    if (withVerb.length > 0) {
      const allowed = [...new Set(withVerb.map((x) => x.route.method))];
      throw new RpcError(
        'NOT_FOUND',
        `Method ${method} is not supported on ${shown}; use ${allowed.join(' or ')}.`,
      );
    }
    throw new RpcError(
      'NOT_FOUND',
      s.verb
        ? `Custom method ":${s.verb.slice(0, 40)}" does not exist on this resource.`
        : `The path ${shown} is not part of this API.`,
    );
  }
  if (c.route.fn !== fn) {
    throw new RpcError(
      'NOT_FOUND',
      `This is the ${fn} function; ${method} ${shown} is served by the ${c.route.fn} function. Send it to the service's base URL.`,
    );
  }
  return { route: c.route, name: s.segments.slice(c.start, c.end).join('/'), verb: s.verb };
}
