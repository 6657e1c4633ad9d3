/** The keyAdmin function: registered with the functions framework; all logic lives in shared/. */
import * as functions from '@google-cloud/functions-framework';
import { httpFunction } from './framework.js';

export const keyAdmin = httpFunction('keyAdmin');
functions.http('keyAdmin', keyAdmin);
