/**
 * Principal forms: which principals a trusted issuer may assert (`user:*`, `user:*@example.com`,
 * `serviceAccount:*@*.iam.gserviceaccount.com`, `user:alice@example.com`). Configuration validates them; the token
 * verifier applies them.
 */

/** Issuers that are Google's own: by default they may assert service accounts too. */
const GOOGLE_ISSUERS = new Set(['https://accounts.google.com', 'accounts.google.com']);

/** The principal forms an issuer may assert when the operator gives none. */
export function defaultPrincipalForms(issuer: string): string[] {
  return GOOGLE_ISSUERS.has(issuer) ? ['user:*', 'serviceAccount:*'] : ['user:*'];
}

/**
 * A principal form (`user:*`, `user:*@example.com`, `serviceAccount:*@*.iam.gserviceaccount.com`,
 * `user:alice@example.com`) as a test; `*` stands for one or more characters other than "@". Case-insensitive.
 */
export function principalForm(form: string): (principal: string) => boolean {
  const i = form.indexOf(':');
  const kind = form.slice(0, i);
  const pattern = form.slice(i + 1);
  const email = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^@]+');
  const re = new RegExp(`^${kind}:${pattern === '*' ? '.+' : email}$`, 'i');
  return (principal) => re.test(principal);
}

/** Whether `form` is a principal form principalForm() understands. */
export function isPrincipalForm(form: string): boolean {
  return /^(user|serviceAccount):(\*|[^@\s:]+@[^@\s:]+)$/.test(form);
}
