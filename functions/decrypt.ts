/** The decrypt function: registered with the functions framework; all logic lives in shared/. */
import * as functions from '@google-cloud/functions-framework';
import { httpFunction } from './framework.js';

export const decrypt = httpFunction('decrypt');
functions.http('decrypt', decrypt);
