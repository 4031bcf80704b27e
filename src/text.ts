// Text rules: names that display as written (SPEC Part 2 "Names are text that displays as written") and the one
// spelling of an email address ("One identity per administrator"). Pure functions, no imports.

const PICTOGRAPH = /\p{Extended_Pictographic}/u;
const EMOJI_TAIL = /[\ufe0f\u{1f3fb}-\u{1f3ff}]/u; // variation selector 16, skin-tone modifiers
/**
 * Characters that draw nothing or hide what follows: controls, format characters, line/paragraph separators,
 * Unicode's Default_Ignorable_Code_Point (the Hangul fillers U+115F U+1160 U+3164 U+FFA0, the combining grapheme
 * joiner U+034F, variation selectors…) and the braille blank U+2800, which looks like a space but is not one.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\u2800]/u;
/** Code points no font shows as themselves: private use (Co) and unassigned ones, noncharacters included (Cn). */
const NOT_DISPLAYED = /[\p{Co}\p{Cn}]/u;
/** Variation selectors (Default_Ignorable): allowed right after a visible character, whose glyph they choose. */
const VARIATION_SELECTOR = /[\u180b-\u180d\u180f\ufe00-\ufe0f\u{e0100}-\u{e01ef}]/u;
/** What shows on its own: not invisible, not white space, not a combining mark (which needs a base). */
const SHOWN = /[^\p{Cc}\p{Cf}\p{Z}\p{M}\p{Default_Ignorable_Code_Point}\s\u2800]/u;

/**
 * The first character of `text` that would make it display other than as written, as `U+XXXX`, or undefined when
 * there is none. Refused: control characters (Cc), format characters (Cf: the bidi controls U+202A–U+202E,
 * U+2066–U+2069, U+200E/U+200F, zero-width spaces and joiners, the BOM, tags…), line/paragraph separators, the
 * other default-ignorable code points (Hangul fillers, U+034F…), the braille blank U+2800, and code points no font
 * shows as themselves (private use, unassigned, noncharacters such as U+FFFF). The exceptions: a
 * zero-width joiner (U+200D) inside an emoji sequence, between two pictographs, the first perhaps followed by VS16
 * or a skin tone (woman + ZWJ + laptop is one "technologist" glyph); a variation selector right after a visible
 * character (❤️ is U+2764 U+FE0F).
 */
export function firstHiddenCharacter(text: string): string | undefined {
  const chars = [...text];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (NOT_DISPLAYED.test(c)) return 'U+' + c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    if (!INVISIBLE.test(c)) continue;
    if (c === '\u200d' && joinsEmoji(chars, i)) continue;
    if (VARIATION_SELECTOR.test(c) && i > 0 && !INVISIBLE.test(chars[i - 1]!)) continue;
    return 'U+' + c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
  }
  return undefined;
}

/**
 * Whether `text` has at least one character that shows on its own: a name of only spaces, combining marks or
 * invisible characters is refused even where each of them is allowed (SPEC "1 to 64 characters after trimming").
 */
export function hasVisibleCharacter(text: string): boolean {
  return SHOWN.test(text);
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** The most code points a name may have, whatever it displays as (a few combining marks per letter at most). */
export const NAME_MAX_CODE_POINTS = 256;

/**
 * The length of `text` in characters as a reader counts them: extended grapheme clusters (Unicode UAX #29), so `é`
 * is one character whether written composed (NFC) or decomposed (NFD), and so is an emoji sequence (a flag, a skin
 * tone, woman + ZWJ + laptop). SPEC "1 to 64 characters after trimming". With `atMost`, counts no further than
 * `atMost + 1` (enough to tell a text over a limit). Pure.
 */
export function characterCount(text: string, atMost = Infinity): number {
  // Stops one past `atMost`: iterating the segments of a long text costs time growing with the square of its length
  // (100,000 characters: seconds, all of them on the event loop), and a limit check needs only to know "more".
  let n = 0;
  for (const _ of graphemes.segment(text)) if (++n > atMost) break;
  return n;
}

/**
 * The most code points a single character of a name may hold: the longest emoji sequences (a kiss with two skin
 * tones) have 10; a letter with a few accents has 2 to 4. A longer cluster (a letter under a tower of combining
 * marks, a chain of emoji joined by ZWJs that no font draws as one) is one character by UAX #29 but does not
 * display as one.
 */
export const MAX_CODE_POINTS_PER_CHARACTER = 10;

/** The largest number of code points in one grapheme cluster of `text` (0 for ''). Pure. */
export function longestCharacter(text: string): number {
  let longest = 0;
  for (const { segment } of graphemes.segment(text)) {
    let n = 0;
    for (const _ of segment) n++;
    if (n > longest) longest = n;
  }
  return longest;
}

function joinsEmoji(chars: string[], at: number): boolean {
  let before = at - 1;
  while (before >= 0 && EMOJI_TAIL.test(chars[before]!)) before--;
  const after = chars[at + 1];
  return before >= 0 && PICTOGRAPH.test(chars[before]!) && after !== undefined && PICTOGRAPH.test(after);
}

/**
 * The key token names are compared and searched by (SPEC "Admin API": unique in the organisation, case-insensitive;
 * Part 2 "Names are text that displays as written"), so names that display alike or differ only in case are one:
 * NFKC (NFC/NFD, full-width letters, the Kelvin sign), full case folding as normaliseEmail does it (`İ` to `i`,
 * upper- then lower-casing), NFKC again. The folding runs twice (ẞ lowercases to ß, only then to ss) and maps final
 * sigma ς to σ, as Unicode's full folding does. Nothing is trimmed or removed (names are validated first; a joiner
 * in an emoji sequence stays). Stored as `tokens.name_key` (migration 0120).
 */
export function tokenNameKey(name: string): string {
  return foldCase(foldCase(name.normalize('NFKC'))).normalize('NFKC');
}

function foldCase(text: string): string {
  return text.replace(/\u0130/g, 'i').toUpperCase().toLowerCase().replace(/\u03c2/g, '\u03c3');
}

/** A number of days as a message says it: "1 day", "30 days". */
export function dayCount(days: number): string {
  return days === 1 ? '1 day' : `${days} days`;
}

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

/** An RFC 5322 `atext` run: letters, digits and ! # $ % & ' * + / = ? ^ _ ` { | } ~ - (ASCII). */
const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
/** A host name label (RFC 1035/5890 LDH, A-labels included): 1 to 63 letters, digits or hyphens, no hyphen at an end. */
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
/** A top-level label: a letter first, 2 to 63 characters (RFC 3696 §2: never all digits; `xn--…` included). */
const TOP_LABEL = '[A-Za-z][A-Za-z0-9-]{0,61}[A-Za-z0-9]';
const EMAIL_ADDRESS = new RegExp(`^${ATEXT}(?:\\.${ATEXT})*@(?:${LABEL}\\.)+${TOP_LABEL}$`);

/**
 * Whether `text` is an email address the server takes for an administrator: an RFC 5322 dot-atom local part of at
 * most 64 characters (`first.last+tag`, `a&b`, `o'brien`: any atext, dots only between runs; RFC 5321 §4.5.3.1.1)
 * at a domain of two or more LDH labels whose last starts with a letter (an internationalised domain as its A-label,
 * `xn--…`; no IP address), 254 characters in all. No quoted local parts, address literals or non-ASCII addresses
 * (RFC 6531), which not every mail path delivers. Call it on normaliseEmail's result; pure.
 */
export function isEmailAddress(text: string): boolean {
  return text.length <= 254 && text.indexOf('@') <= 64 && EMAIL_ADDRESS.test(text);
}

