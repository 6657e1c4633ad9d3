/** The healthCheck function: registered with the functions framework; all logic lives in shared/. */
import * as functions from '@google-cloud/functions-framework';
import { httpFunction } from './framework.js';

export const healthCheck = httpFunction('healthCheck');
functions.http('healthCheck', healthCheck);
