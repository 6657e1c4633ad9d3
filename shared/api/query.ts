/**
 * Query schemas of the route table: each accepted query parameter with the decoder that turns its text into a
 * value (or refuses it with INVALID_ARGUMENT naming the parameter). Parameters a route does not list, other
 * than Google's system parameters, are refused by the check stage.
 */
import { enumValue, parseBool } from '../resources/fields.js';
import { CryptoKeyVersionView, PublicKeyFormat } from '../resources/types.js';

export type QueryDecoder<T> = (raw: string, field: string) => T;
export type QuerySchema = Record<string, QueryDecoder<unknown>>;
/** The decoded query of a schema: every parameter optional. */
export type QueryOf<S> = { [K in keyof S]?: S[K] extends QueryDecoder<infer T> ? T : never };

export const text: QueryDecoder<string> = (raw) => raw;
export const bool: QueryDecoder<boolean> = (raw, field) => parseBool(raw, field);
/** `view` / `versionView` (FULL adds HSM attestation) change nothing here, but a bad value is still refused. */
export const view: QueryDecoder<string> = (raw, field) => String(enumValue(CryptoKeyVersionView, raw, field));

/** getPublicKey's `publicKeyFormat`, by name or number. */
export const publicKeyFormat: QueryDecoder<string> = (raw, field) =>
  String(enumValue(PublicKeyFormat, raw, field));

export const LIST_QUERY = { pageSize: text, pageToken: text, filter: text, orderBy: text };

/** Query parameters every Google REST API accepts; they never change what an operation does here. */
export const SYSTEM_QUERY: ReadonlySet<string> = new Set([
  ...['alt', 'fields', 'prettyPrint', 'key', 'quotaUser', 'callback'].flatMap((p) => [p, `$${p}`]),
  '$.xgafv',
  'access_token',
]);
