/**
 * The one identity key of an email address (SPEC Part 2 "One identity per administrator"): Unicode NFKC, then a
 * full case fold (upper then lower, so "ß" and "SS" agree; "İ" folds to "i"), trimmed. Two addresses are the same
 * administrator exactly when their keys are equal. Pure; never throws.
 */
export function normaliseEmail(email: string): string {
  return email
    .trim()
    .normalize('NFKC')
    .toUpperCase()
    .toLowerCase()
    .replace(/i\u0307/g, 'i') // "İ" lower-cases to "i" + combining dot above
    .normalize('NFKC');
}
