/** keyRings.create / get / list. Key rings cannot be deleted, so a used name is never reused. */

import type { Deps } from '../context.js';
import { RpcError } from '../errors.js';
import { allowOnly, type JsonObject } from '../resources/fields.js';
import { checkId, keyRingPath, parseKeyRingName, parseLocationName } from '../resources/names.js';
import type { KeyRing } from '../resources/types.js';
import { type ListRequest, type Page, paginate } from './list.js';

export async function createKeyRing(deps: Deps, parent: string, keyRingId: string | null, body: JsonObject) {
  const loc = parseLocationName(parent);
  const id = checkId(keyRingId ?? undefined, 'keyRingId');
  allowOnly(body, ['name', 'createTime']);
  const name = keyRingPath({ ...loc, keyRing: id });
  const ring: KeyRing = { name, createTime: deps.now().toISOString() };
  await deps.store.transaction(async (tx) => {
    if (await tx.get(name)) throw RpcError.alreadyExists(name);
    tx.create(name, { ...ring });
  });
  deps.cache.invalidate(name);
  return ring;
}

export async function getKeyRing(deps: Deps, name: string): Promise<KeyRing> {
  parseKeyRingName(name);
  const ring = await deps.store.get<KeyRing & JsonObject>(name);
  if (!ring) throw RpcError.notFound(name);
  return { name: ring.name, createTime: ring.createTime };
}

export async function listKeyRings(deps: Deps, parent: string, req: ListRequest): Promise<Page<KeyRing>> {
  parseLocationName(parent);
  const all = await deps.store.list<KeyRing & JsonObject>(parent, 'keyRings');
  return paginate(
    all.map((r) => ({ name: r.name, createTime: r.createTime })),
    req,
    deps.config,
  );
}
