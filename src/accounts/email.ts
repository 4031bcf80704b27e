/**
 * The one spelling of an administrator's email address (SPEC Part 2 "One identity per administrator"): trimmed,
 * Unicode NFKC (full-width letters, ligatures and other compatibility forms become their plain letters), case
 * folded, without invisible format characters (Unicode category Cf: zero-width space, joiners, bidi controls).
 * Every place an email is compared or keyed uses it: sign-in, the sign-in throttle, uniqueness, stored rows.
 *
 * Case folding: upper-casing then lower-casing, which folds ß to ss, final sigma to sigma and dotless ı to i
 * like Unicode full case folding does, with `İ` (U+0130) folded to `i` as in the Turkic folding (the default
 * folding gives `i` + U+0307, a look-alike of `i` that would otherwise be a separate identity). Twice: the capital
 * sharp s ẞ (U+1E9E) lower-cases to ß and only the second round makes it ss, as full case folding does.
 */
export function normaliseEmail(email: string): string {
  return email
    .normalize('NFKC')
    .replace(/\p{Cf}/gu, '')
    .replace(/\u0130/g, 'i')
    .toUpperCase()
    .toLowerCase()
    .toUpperCase()
    .toLowerCase()
    .normalize('NFKC')
    .trim();
}
