/**
 * What every core operation receives: its collaborators (Deps, made once per instance) and the request's own
 * context (who calls, a request id, a deadline). Core code never sees an HTTP framework type.
 */
import type { Authorizer } from './access/iam.js';
import type { Caller } from './access/identity.js';
import type { GatewayIdentity } from './access/outgoing.js';
import type { AuditRecord } from './audit/audit.js';
import type { Config } from './config.js';
import type { RootKeyring } from './crypto/material.js';
import type { EkmClient } from './ekm/client.js';
import type { Hsm } from './hsm/hsm.js';
import type { Logger } from './log.js';
import type { EkmQuota } from './quota/ekm-quota.js';
import type { AccessReasonName } from './resources/types.js';
import type { MetadataCache } from './store/cache.js';
import type { Store } from './store/firestore.js';

export interface Deps {
  config: Config;
  store: Store;
  cache: MetadataCache;
  /** The IAM checks (docs/iam.md). */
  authorizer: Authorizer;
  rootKeys: RootKeyring;
  /** The clock; tests move it to make scheduled destructions due. */
  now: () => Date;
  /** Calls to external key managers (EXTERNAL keys). */
  ekm: EkmClient;
  log: Logger;
  /** The EKM crypto request quota shared by all instances (one unit per encrypt or decrypt with an EKM). */
  quota: EkmQuota;
  /** OpenEKM's identity towards EKMs, when configured. */
  identity?: GatewayIdentity;
  /** The PKCS#11 token of HSM keys (docs/hsm.md), when configured. */
  hsm?: Hsm;
}

export interface RequestContext {
  caller: Caller;
  requestId: string;
  /** Aborts when the request's deadline passes or the client goes away. */
  signal: AbortSignal;
  /** The request's deadline, epoch ms. */
  deadline: number;
  /** The Key Access Justification reason the caller states (X-OpenEKM-Access-Reason), or the default. */
  reason: AccessReasonName;
  /** What operations add to the request's audit entry (the version used, EKM facts, IAM decisions). */
  audit?: AuditRecord;
  /**
   * Checks a further permission of the caller on another resource (e.g. cloudkms.ekmConnections.use on the
   * connection a new key names); throws PERMISSION_DENIED. Absent for work no caller asked for.
   */
  authorize?: (permission: string, resource: string) => Promise<void>;
}
