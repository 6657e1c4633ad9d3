/** The EKM client's retry budget and concurrency limiter (shared/ekm/overload.ts), on an injected clock. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConcurrencyLimiter, RetryBudget } from '../../shared/ekm/overload.js';

test('the retry budget allows retries up to the share of first attempts plus the reserve, per endpoint', () => {
  let now = 1_000_000;
  const budget = new RetryBudget(
    { retryBudgetPercent: 10, retryBudgetMinPerSecond: 1, retryBudgetWindowMs: 10_000 },
    () => now,
  );
  // A quiet endpoint: the reserve (1/s over 10 s) allows 10 retries, then none.
  let allowed = 0;
  for (let i = 0; i < 50; i++) if (budget.tryRetry('a')) allowed++;
  assert.equal(allowed, 10);
  // 200 first attempts add 20.
  for (let i = 0; i < 200; i++) budget.recordFirst('a');
  allowed = 0;
  for (let i = 0; i < 50; i++) if (budget.tryRetry('a')) allowed++;
  assert.equal(allowed, 20);
  // Another endpoint has its own budget.
  assert.equal(budget.tryRetry('b'), true);
  // Once the window has passed, the old attempts and retries no longer count: the reserve is back.
  now += 11_000;
  allowed = 0;
  for (let i = 0; i < 50; i++) if (budget.tryRetry('a')) allowed++;
  assert.equal(allowed, 10);
});

test('the retry budget slides: the oldest slice leaves the window first', () => {
  let now = 0;
  const budget = new RetryBudget(
    { retryBudgetPercent: 50, retryBudgetMinPerSecond: 0, retryBudgetWindowMs: 10_000 },
    () => now,
  );
  for (let i = 0; i < 10; i++) budget.recordFirst('e'); // t = 0: 10 firsts → 5 retries
  now = 5_000;
  for (let i = 0; i < 10; i++) budget.recordFirst('e'); // t = 5 s: 10 more → 10 retries in all
  let allowed = 0;
  for (let i = 0; i < 20; i++) if (budget.tryRetry('e')) allowed++;
  assert.equal(allowed, 10);
  // At t = 10.5 s the first slice (firsts at 0) has left; the retries taken at 5 s still count.
  now = 10_500;
  assert.equal(budget.tryRetry('e'), false);
  // At 16 s everything from 5 s has left too.
  now = 16_000;
  for (let i = 0; i < 2; i++) budget.recordFirst('e');
  assert.equal(budget.tryRetry('e'), true);
  assert.equal(budget.tryRetry('e'), false);
});

test('a budget of 0 % with no reserve never retries', () => {
  const budget = new RetryBudget({
    retryBudgetPercent: 0,
    retryBudgetMinPerSecond: 0,
    retryBudgetWindowMs: 10_000,
  });
  for (let i = 0; i < 100; i++) budget.recordFirst('x');
  assert.equal(budget.tryRetry('x'), false);
});

test('the limiter admits up to its bound, refuses at once without a wait, and hands a freed slot to a waiter', async () => {
  const limiter = new ConcurrencyLimiter(2);
  const a = limiter.acquire('e', 0);
  const b = limiter.acquire('e', 0);
  assert.equal(typeof a, 'function');
  assert.equal(typeof b, 'function');
  assert.equal(limiter.acquire('e', 0), undefined, 'full, no wait: refused at once');
  assert.equal(typeof limiter.acquire('other', 0), 'function', 'another endpoint has its own slots');
  const waiting = limiter.acquire('e', 1000) as Promise<(() => void) | undefined>;
  assert.ok(waiting instanceof Promise);
  (a as () => void)();
  (a as () => void)(); // releasing twice frees one slot only
  const c = await waiting;
  assert.equal(typeof c, 'function');
  assert.equal(limiter.inFlight('e'), 2);
  assert.equal(limiter.acquire('e', 0), undefined);
  (b as () => void)();
  c!();
  assert.equal(limiter.inFlight('e'), 0);
});

test('a waiter whose wait ends without a free slot is refused, and does not take a later slot', async () => {
  const limiter = new ConcurrencyLimiter(1);
  const a = limiter.acquire('e', 0) as () => void;
  const started = Date.now();
  const refused = await limiter.acquire('e', 30);
  assert.equal(refused, undefined);
  assert.ok(Date.now() - started < 1000);
  a();
  assert.equal(limiter.inFlight('e'), 0);
});
