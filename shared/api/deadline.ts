/**
 * The request's deadline: the configured one, shortened by the caller's `X-Server-Timeout`, and cancelled when the
 * client goes away. Everything the request does runs under its signal; `withDeadline` answers DEADLINE_EXCEEDED
 * or CANCELLED when the signal fires before the work ends.
 */
import { RpcError } from '../errors.js';

export interface Deadline {
  signal: AbortSignal;
  /** Epoch ms. */
  deadline: number;
  /** Disarms the timer and the cancel listener when the request ends. */
  release: () => void;
}

/**
 * Aborts when the deadline passes (reason: a TimeoutError, as AbortSignal.timeout) or when `cancel` aborts (its
 * reason), whichever comes first — what AbortSignal.any([AbortSignal.timeout(ms), cancel]) gives, at a fraction of
 * its cost per request.
 */
export function startDeadline(
  configuredMs: number,
  serverTimeout: string | undefined,
  cancel: AbortSignal | undefined,
  now: number,
): Deadline {
  let ms = configuredMs;
  if (serverTimeout && /^[0-9]+(\.[0-9]+)?$/.test(serverTimeout)) {
    ms = Math.min(ms, Math.max(1, Number(serverTimeout) * 1000));
  }
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
    ms,
  );
  timer.unref();
  let onCancel: (() => void) | undefined;
  if (cancel?.aborted) controller.abort(cancel.reason);
  else if (cancel) {
    onCancel = () => controller.abort(cancel.reason);
    cancel.addEventListener('abort', onCancel, { once: true });
  }
  return {
    signal: controller.signal,
    deadline: now + ms,
    release: () => {
      clearTimeout(timer);
      if (onCancel) cancel?.removeEventListener('abort', onCancel);
    },
  };
}

/**
 * The work's outcome, or DEADLINE_EXCEEDED / CANCELLED when `signal` aborts first. One promise and one reaction
 * instead of async/await around Promise.race: promises are a large share of the per-request cost under the
 * functions framework's per-request domain.
 */
export function withDeadline<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(RpcError.deadlineExceeded('The request deadline passed before the work started.'));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () =>
      reject(
        (signal.reason as { name?: string } | undefined)?.name === 'TimeoutError'
          ? RpcError.deadlineExceeded(
              'The request did not finish within its deadline; its outcome is unknown. Retry it.',
            )
          : new RpcError('CANCELLED', 'The client cancelled the request; its outcome is unknown.'),
      );
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
