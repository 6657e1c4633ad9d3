/**
 * The healthProbe function: the EKM availability probe as a CloudEvent function, for a Pub/Sub topic that Cloud
 * Scheduler (or anything else) publishes to. The same probe is reachable over HTTP as `POST /health/probe` on
 * the healthCheck function. A failed run throws, so the event is retried per the trigger's policy.
 */
import * as functions from '@google-cloud/functions-framework';
import { getGateway } from './instance.js';

export async function healthProbe(_event: functions.CloudEvent<unknown>): Promise<void> {
  await getGateway().probe();
}
functions.cloudEvent('healthProbe', healthProbe);
