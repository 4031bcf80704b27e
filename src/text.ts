// Text that displays as written (SPEC Part 2 "Names are text that displays as written"): the rule for names.

const PICTOGRAPH = /\p{Extended_Pictographic}/u;
const EMOJI_TAIL = /[\ufe0f\u{1f3fb}-\u{1f3ff}]/u; // variation selector 16, skin-tone modifiers
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/**
 * The first character of `text` that would make it display other than as written, as `U+XXXX`, or undefined when
 * there is none. Refused: control characters (Cc), format characters (Cf: the bidi controls U+202A–U+202E,
 * U+2066–U+2069, U+200E/U+200F, zero-width spaces and joiners, the BOM, tags…) and line/paragraph separators. The
 * one exception is a zero-width joiner (U+200D) inside an emoji sequence: between two pictographs, the first
 * perhaps followed by VS16 or a skin tone (woman + ZWJ + laptop is one "technologist" glyph).
 */
export function firstHiddenCharacter(text: string): string | undefined {
  const chars = [...text];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (!INVISIBLE.test(c)) continue;
    if (c === '\u200d' && joinsEmoji(chars, i)) continue;
    return 'U+' + c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
  }
  return undefined;
}

function joinsEmoji(chars: string[], at: number): boolean {
  let before = at - 1;
  while (before >= 0 && EMOJI_TAIL.test(chars[before]!)) before--;
  const after = chars[at + 1];
  return before >= 0 && PICTOGRAPH.test(chars[before]!) && after !== undefined && PICTOGRAPH.test(after);
}
