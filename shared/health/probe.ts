/**
 * The EKM availability probe (`POST /health/probe`, the `healthProbe` CloudEvent function): checks every EKM
 * target in use — each declared endpoint and each replica of each EKM connection — once, with the same
 * per-attempt timeout real requests get, records the outcome in Firestore with a bounded history, and then
 * finishes the scheduled work (due destructions, rotations, coordinated-key steps). `buildReport` turns the
 * records into what `GET /health/ekm` and the status page show.
 */
import { randomUUID } from 'node:crypto';
import type { Deps } from '../context.js';
import { endpointTargets, type ProbeTarget } from '../ekm/connections.js';
import { EkmFailure, ekmHint, FAILOVER } from '../ekm/errors.js';
import { systemCall } from '../ekm/protocols.js';
import type { ProbeState } from '../ekm/replicas.js';
import { replicasOf } from '../operations/ekm-connections.js';
import { runScheduledTasks } from '../operations/scheduled.js';
import type { JsonObject } from '../resources/fields.js';
import type { EkmConnection } from '../resources/types.js';
import type { EkmHealthReport, LatencySummary, ProbePoint, TargetReport } from './report.js';

/** Where the records live: one document per target with its history, and one small summary document. */
const HEALTH_PARENT = 'openekm/ekmHealth';
const HEALTH_COLLECTION = 'targets';
const HEALTH_SUMMARY = 'openekm/ekmHealthSummary';

const MAX_CONNECTIONS = 1000;
const PROBES_AT_ONCE = 8;
const DAY_MS = 24 * 3600_000;
const HOUR_MS = 3600_000;

interface StoredPoint {
  t: number;
  ok: boolean;
  ms: number;
  d?: string;
}

interface StoredTarget {
  id: string;
  kind: ProbeTarget['kind'];
  name: string;
  replica: string;
  protocol: ProbeTarget['endpoint']['protocol'];
  lastSuccess: { time: string; latencyMs: number } | null;
  lastFailure: { time: string; domain: string; message: string } | null;
  history: StoredPoint[];
}

export interface ProbeOutcome {
  id: string;
  kind: ProbeTarget['kind'];
  name: string;
  replica: string;
  ok: boolean;
  latencyMs: number;
  domain?: string;
}

/** Every target in use: the declared endpoints, then each replica of each EKM connection. */
async function probeTargets(
  deps: Deps,
): Promise<{ target: ProbeTarget; probeKeyPath?: string; cryptoSpacePath?: string }[]> {
  const out: { target: ProbeTarget; probeKeyPath?: string; cryptoSpacePath?: string }[] = endpointTargets(
    deps.config.ekmEndpoints,
  ).map((target) =>
    target.endpoint.probeKeyPath ? { target, probeKeyPath: target.endpoint.probeKeyPath } : { target },
  );
  const conns = await deps.store.listGroup<EkmConnection & JsonObject>('ekmConnections', MAX_CONNECTIONS);
  conns.sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const conn of conns) {
    for (const target of replicasOf(deps, conn)) {
      const entry: { target: ProbeTarget; probeKeyPath?: string; cryptoSpacePath?: string } = { target };
      if (deps.config.ekmProbeKeyPath) entry.probeKeyPath = deps.config.ekmProbeKeyPath;
      else if (conn.cryptoSpacePath) entry.cryptoSpacePath = conn.cryptoSpacePath;
      out.push(entry);
    }
  }
  return out;
}

/**
 * One target, as a request would meet it: an attempt with the target's per-attempt timeout and, when it fails
 * with a domain a request would retry or fail over on, one more. A cold instance's first attempt (TLS handshake,
 * token signing, JIT) can exceed 150 ms on its own; a request would retry it, so the probe does too rather than
 * report a healthy EKM DOWN. The latency recorded is the last attempt's.
 */
async function probeOne(
  deps: Deps,
  entry: { target: ProbeTarget; probeKeyPath?: string; cryptoSpacePath?: string },
  signal: AbortSignal,
): Promise<ProbeOutcome & { message: string }> {
  const { target } = entry;
  const base = { id: target.id, kind: target.kind, name: target.name, replica: target.replica };
  for (let attempt = 1; ; attempt++) {
    const started = performance.now();
    try {
      await deps.ekm.probe(
        target,
        {
          ...(entry.probeKeyPath ? { probeKeyPath: entry.probeKeyPath } : {}),
          ...(entry.cryptoSpacePath ? { cryptoSpacePath: entry.cryptoSpacePath } : {}),
          ctx: systemCall(
            target.kind === 'connection' ? target.name : 'openekm-probe',
            'openekm-probe',
            randomUUID(),
          ),
        },
        signal,
      );
      return { ...base, ok: true, latencyMs: round(performance.now() - started), message: '' };
    } catch (err) {
      const failure = EkmFailure.from(err);
      if (attempt < 2 && FAILOVER.has(failure.domain) && !signal.aborted) continue;
      deps.log.warn(`EKM probe failed: ${failure.domain}`, {
        target: target.name,
        replica: target.replica,
        errorDomain: failure.domain,
        detail: failure.detail.slice(0, 300),
      });
      return {
        ...base,
        ok: false,
        latencyMs: round(performance.now() - started),
        domain: failure.domain,
        // The domain's fixed hint, never the raw socket or partner error text (that goes to the log only).
        message: ekmHint(failure.domain),
      };
    }
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

async function record(
  deps: Deps,
  target: ProbeTarget,
  o: ProbeOutcome & { message: string },
  at: Date,
): Promise<void> {
  const path = `${HEALTH_PARENT}/${HEALTH_COLLECTION}/${target.id}`;
  const t = at.getTime();
  await deps.store.transaction(async (tx) => {
    const prev = await tx.get<StoredTarget & JsonObject>(path);
    const point: StoredPoint = { t, ok: o.ok, ms: o.latencyMs };
    if (o.domain) point.d = o.domain;
    const history = [...(prev?.history ?? []), point]
      .filter((p) => p.t > t - DAY_MS)
      .slice(-deps.config.probeHistory);
    const next: StoredTarget = {
      id: target.id,
      kind: target.kind,
      name: target.name,
      replica: target.replica,
      protocol: target.endpoint.protocol,
      lastSuccess: o.ok ? { time: at.toISOString(), latencyMs: o.latencyMs } : (prev?.lastSuccess ?? null),
      lastFailure: o.ok
        ? (prev?.lastFailure ?? null)
        : { time: at.toISOString(), domain: o.domain ?? 'UNEXPECTED_ERROR', message: o.message },
      history,
    };
    tx.set(path, { ...next });
  });
}

/** The latest outcome per target, in one small document the gateways read for replica choice. */
async function recordSummary(deps: Deps, outcomes: ProbeOutcome[], at: Date): Promise<void> {
  const t = at.getTime();
  await deps.store.transaction(async (tx) => {
    const prev = (await tx.get<{ targets: Record<string, ProbeState> } & JsonObject>(HEALTH_SUMMARY))
      ?.targets;
    // Targets not probed for a day (removed replicas, connections gone) drop out; a newer result (another probe
    // run that finished first) is kept.
    const targets: Record<string, ProbeState> = {};
    for (const [id, state] of Object.entries(prev ?? {})) if (state.time > t - DAY_MS) targets[id] = state;
    for (const o of outcomes) {
      const old = targets[o.id];
      if (!old || old.time <= t) targets[o.id] = { up: o.ok, time: t };
    }
    tx.set(HEALTH_SUMMARY, { targets } as unknown as JsonObject);
  });
}

/** Reads the summary for the EKM client's replica choice. */
export function probeStateLoader(deps: Pick<Deps, 'store'>): () => Promise<Map<string, ProbeState>> {
  return async () => {
    const doc = await deps.store.get<{ targets?: Record<string, ProbeState> } & JsonObject>(HEALTH_SUMMARY);
    return new Map(Object.entries(doc?.targets ?? {}));
  };
}

/** Probes every target once, records the outcomes, then runs the scheduled tasks. */
export async function runProbe(deps: Deps, signal: AbortSignal) {
  const entries = await probeTargets(deps);
  const at = deps.now();
  const outcomes: (ProbeOutcome & { message: string })[] = new Array(entries.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(PROBES_AT_ONCE, entries.length) }, async () => {
      while (next < entries.length) {
        const i = next++;
        outcomes[i] = await probeOne(deps, entries[i]!, signal);
      }
    }),
  );
  await Promise.all(entries.map((e, i) => record(deps, e.target, outcomes[i]!, at)));
  if (outcomes.length > 0) await recordSummary(deps, outcomes, at);
  await deps.ekm.replicas.reload();
  for (const o of outcomes) {
    deps.log.entry({
      severity: o.ok ? 'INFO' : 'WARNING',
      message: `EKM probe ${o.replica} ${o.ok ? 'OK' : o.domain}`,
      metric: 'openekm.ekm.probe',
      probe: {
        target: o.id,
        kind: o.kind,
        name: o.name,
        replica: o.replica,
        ok: o.ok,
        latencyMs: o.latencyMs,
        status: o.domain ?? 'OK',
      },
    });
  }
  const tasks = await runScheduledTasks(deps);
  return {
    probed: outcomes.map(({ message: _m, ...o }) => o),
    ...tasks,
  };
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function summary(points: StoredPoint[]): LatencySummary {
  const ok = points.filter((p) => p.ok).map((p) => p.ms);
  ok.sort((a, b) => a - b);
  return {
    count: points.length,
    availability: points.length ? Math.round((ok.length / points.length) * 10_000) / 10_000 : null,
    p50Ms: percentile(ok, 50),
    p95Ms: percentile(ok, 95),
    p99Ms: percentile(ok, 99),
  };
}

/** What GET /health/ekm answers: every target in use, with its recorded health. */
export async function buildReport(deps: Deps): Promise<EkmHealthReport> {
  const [entries, docs] = await Promise.all([
    probeTargets(deps),
    deps.store.list<StoredTarget & JsonObject>(HEALTH_PARENT, HEALTH_COLLECTION),
  ]);
  const byId = new Map(docs.map((d) => [d.id, d]));
  const now = deps.now().getTime();
  const staleAfter = 3 * deps.config.probeIntervalSeconds * 1000;
  const targets: TargetReport[] = entries.map(({ target }) => {
    const doc = byId.get(target.id);
    const history = (doc?.history ?? []).filter((p) => p.t > now - DAY_MS);
    const last = history[history.length - 1];
    const state = !last || now - last.t > staleAfter ? 'UNKNOWN' : last.ok ? 'UP' : 'DOWN';
    return {
      id: target.id,
      kind: target.kind,
      name: target.name,
      replica: target.replica,
      protocol: target.endpoint.protocol,
      state,
      lastProbeTime: last ? new Date(last.t).toISOString() : null,
      lastSuccess: doc?.lastSuccess ?? null,
      lastFailure: doc?.lastFailure ?? null,
      hour: summary(history.filter((p) => p.t > now - HOUR_MS)),
      day: summary(history),
      history: history.map((p): ProbePoint => {
        const point: ProbePoint = { time: new Date(p.t).toISOString(), ok: p.ok, latencyMs: p.ms };
        if (p.d) point.domain = p.d;
        return point;
      }),
    };
  });
  return {
    generatedAt: new Date(now).toISOString(),
    probeIntervalSeconds: deps.config.probeIntervalSeconds,
    targets,
  };
}
