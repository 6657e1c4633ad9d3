/**
 * The scheduled job behind `POST /health/tasks:run` (Cloud Scheduler in the cloud): finishes scheduled
 * destructions that are due and rotates SOFTWARE keys whose nextRotationTime has come.
 */
import type { JsonObject } from '../api/decode.js';
import type { Deps } from '../context.js';
import type { StoredCryptoKey } from '../resources/types.js';
import { parseDurationString } from '../resources/validate.js';
import { finishDueDestructions, newVersion } from './cryptoKeyVersions.js';

/**
 * Rotates every key whose nextRotationTime has passed: a new version becomes primary and nextRotationTime
 * advances by rotationPeriod (past any missed periods), or is cleared for a one-time rotation. Each key is
 * rotated in its own transaction, which re-checks that the rotation is still due, so two jobs running at once
 * rotate a key once.
 */
export async function rotateDueKeys(deps: Deps, batch = 200): Promise<{ rotated: string[] }> {
  const now = deps.now();
  const due = await deps.store.findAtMost<StoredCryptoKey & JsonObject>(
    'cryptoKeys',
    'nextRotationTime',
    now.toISOString(),
    batch,
  );
  const rotated: string[] = [];
  for (const candidate of due) {
    const version = await deps.store.transaction(async (tx) => {
      const key = await tx.get<StoredCryptoKey & JsonObject>(candidate.name);
      if (!key?.nextRotationTime || Date.parse(key.nextRotationTime) > now.getTime()) return undefined;
      if (key.versionTemplate.protectionLevel !== 'SOFTWARE') return undefined;
      const next: StoredCryptoKey = { ...key };
      const v = newVersion(deps, next, 'ENABLED', undefined);
      next.primaryVersionId = v.name.slice(v.name.lastIndexOf('/') + 1);
      if (next.rotationPeriod) {
        const periodMs = parseDurationString(next.rotationPeriod) * 1000;
        let t = Date.parse(key.nextRotationTime);
        while (t <= now.getTime()) t += periodMs;
        next.nextRotationTime = new Date(t).toISOString();
      } else {
        delete next.nextRotationTime;
      }
      tx.set(next.name, { ...next });
      tx.create(v.name, { ...v });
      return v;
    });
    deps.cache.invalidate(candidate.name);
    if (version) rotated.push(version.name);
  }
  return { rotated };
}

export async function runScheduledTasks(deps: Deps): Promise<{ destroyed: string[]; rotated: string[] }> {
  const { destroyed } = await finishDueDestructions(deps);
  const { rotated } = await rotateDueKeys(deps);
  return { destroyed, rotated };
}
