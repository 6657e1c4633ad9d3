/**
 * The scheduled job behind `POST /health/tasks:run` and the EKM probe (Cloud Scheduler in the cloud): finishes
 * scheduled destructions that are due (asking the EKM to destroy coordinated keys), settles coordinated
 * versions stuck waiting for their EKM, and rotates keys whose nextRotationTime has come (SOFTWARE keys, and
 * EXTERNAL_VPC keys on a coordinated connection, whose EKM creates the new key).
 */

import type { Deps } from '../context.js';
import type { JsonObject } from '../resources/fields.js';
import type { StoredCryptoKey } from '../resources/types.js';
import { parseDurationString } from '../resources/validate.js';
import { finishPendingVersions, generateCoordinatedIf, systemContext } from './coordinated.js';
import { finishDueDestructions } from './crypto-key-versions.js';
import { newVersion } from './new-version.js';

/**
 * Rotates every key whose nextRotationTime has passed: a new version becomes primary and nextRotationTime
 * advances by rotationPeriod (past any missed periods), or is cleared for a one-time rotation. Each key is
 * rotated in its own transaction, which re-checks that the rotation is still due, so two jobs running at once
 * rotate a key once.
 */
async function rotateDueKeys(deps: Deps, batch = 200): Promise<{ rotated: string[] }> {
  const now = deps.now();
  const due = await deps.store.findAtMost<StoredCryptoKey & JsonObject>(
    'cryptoKeys',
    'nextRotationTime',
    now.toISOString(),
    batch,
  );
  const rotated: string[] = [];
  for (const candidate of due) {
    if (candidate.versionTemplate.protectionLevel === 'EXTERNAL_VPC') {
      const v = await rotateCoordinated(deps, candidate.name);
      if (v) rotated.push(v);
      continue;
    }
    const version = await deps.store.transaction(async (tx) => {
      const key = await tx.get<StoredCryptoKey & JsonObject>(candidate.name);
      if (!key?.nextRotationTime || Date.parse(key.nextRotationTime) > now.getTime()) return undefined;
      if (key.versionTemplate.protectionLevel !== 'SOFTWARE') return undefined;
      // An import-only key never gets a generated version (it cannot have a rotation schedule; this guards data
      // written before that was checked).
      if (key.importOnly) return undefined;
      const next: StoredCryptoKey = { ...key };
      const v = newVersion(deps, next, 'ENABLED', undefined);
      next.primaryVersionId = v.name.slice(v.name.lastIndexOf('/') + 1);
      advanceRotation(next, now);
      tx.set(next.name, { ...next });
      tx.create(v.name, { ...v });
      return v;
    });
    deps.cache.invalidate(candidate.name);
    if (version) rotated.push(version.name);
  }
  return { rotated };
}

/** nextRotationTime moves on by rotationPeriod, past any missed periods; a one-time rotation clears it. */
function advanceRotation(key: StoredCryptoKey, now: Date): void {
  if (key.rotationPeriod && key.nextRotationTime) {
    const periodMs = parseDurationString(key.rotationPeriod) * 1000;
    let t = Date.parse(key.nextRotationTime);
    while (t <= now.getTime()) t += periodMs;
    key.nextRotationTime = new Date(t).toISOString();
  } else {
    delete key.nextRotationTime;
  }
}

/**
 * A coordinated key's rotation: the EKM creates the new version's key, which becomes primary. The new version
 * and the advanced nextRotationTime are written in one transaction (before the EKM call), so a second job
 * running at once sees the rotation done; a version whose generation fails stays GENERATION_FAILED and primary
 * is then whatever generateCoordinated left (see docs/ekm-connections.md).
 */
async function rotateCoordinated(deps: Deps, keyName: string): Promise<string | undefined> {
  const now = deps.now();
  const v = await generateCoordinatedIf(deps, systemContext(deps), keyName, {
    makePrimary: true,
    // Re-checked in the transaction: a second job running at once finds the rotation done.
    onKey: (key) => {
      if (!key.nextRotationTime || Date.parse(key.nextRotationTime) > now.getTime()) return false;
      advanceRotation(key, now);
      return true;
    },
  });
  return v?.name;
}

export async function runScheduledTasks(deps: Deps): Promise<{
  destroyed: string[];
  rotated: string[];
  externallyDestroyed: string[];
  failed: string[];
}> {
  const { destroyed } = await finishDueDestructions(deps);
  const { externallyDestroyed, failed } = await finishPendingVersions(deps);
  const { rotated } = await rotateDueKeys(deps);
  return { destroyed, rotated, externallyDestroyed, failed };
}
