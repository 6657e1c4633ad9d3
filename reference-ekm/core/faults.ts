import type { FaultRule } from '../state/types.js';

/**
 * Deterministic fault injection (local and test modes only). A rule with rate r fires on the requests
 * where floor(n * r) increases, n counting the requests the rule matched: rate 1 fires every time,
 * 0.5 every second request, 0.25 every fourth. Counters restart when the rule set changes.
 */
export class FaultInjector {
  private counters = new Map<string, number>();
  private lastRules = '';

  constructor(private readonly enabled: boolean) {}

  pick(rules: FaultRule[], keyId: string | undefined): FaultRule | undefined {
    if (!this.enabled || rules.length === 0) return undefined;
    const signature = JSON.stringify(rules);
    if (signature !== this.lastRules) {
      this.counters = new Map();
      this.lastRules = signature;
    }
    for (const [index, rule] of rules.entries()) {
      if (rule.target !== '*' && rule.target !== keyId) continue;
      const n = this.counters.get(String(index)) ?? 0;
      this.counters.set(String(index), n + 1);
      if (Math.floor((n + 1) * rule.rate) > Math.floor(n * rule.rate)) return rule;
    }
    return undefined;
  }
}

export function parseFaultSpec(spec: string, rateSpec: string | undefined): Omit<FaultRule, 'target'> {
  let rate = 1;
  if (rateSpec !== undefined) {
    const match = /^rate=(.+)$/.exec(rateSpec);
    const value = match ? Number(match[1]) : Number.NaN;
    if (!match || !Number.isFinite(value) || value < 0 || value > 1) {
      throw new Error(`bad rate "${rateSpec}": use rate=0..1`);
    }
    rate = value;
  }
  if (spec === 'hang' || spec === 'reset' || spec === 'garbage' || spec === 'oversize')
    return { kind: spec, rate };
  const match = /^(latency|status)=(\d+)$/.exec(spec);
  if (!match)
    throw new Error(`bad fault "${spec}": use latency=MS, status=CODE, hang, reset, garbage or oversize`);
  const value = Number(match[2]);
  if (match[1] === 'status' && (value < 400 || value > 599))
    throw new Error('status must be an HTTP error code 400-599');
  if (match[1] === 'latency' && value > 600_000) throw new Error('latency must be at most 600000 ms');
  return { kind: match[1] as 'latency' | 'status', value, rate };
}
