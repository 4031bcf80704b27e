import { characterCount, firstHiddenCharacter, isEmailAddress, longestCharacter, hasVisibleCharacter, tokenNameKey } from '../../src/text.js';

describe('firstHiddenCharacter (names display as written)', () => {
  it.each([
    ['\u202eevil', 'U+202E'],
    ['a\u202ab', 'U+202A'],
    ['a\u202bb', 'U+202B'],
    ['a\u202cb', 'U+202C'],
    ['a\u202db', 'U+202D'],
    ['a\u2066b', 'U+2066'],
    ['a\u2067b', 'U+2067'],
    ['a\u2068b', 'U+2068'],
    ['a\u2069b', 'U+2069'],
    ['a\u200eb', 'U+200E'],
    ['a\u200fb', 'U+200F'],
    ['a\u200bb', 'U+200B'], // zero-width space (Cf)
    ['a\u00adb', 'U+00AD'], // soft hyphen (Cf)
    ['a\u{e0041}b', 'U+E0041'], // tag character (Cf)
    ['a\u0000b', 'U+0000'],
    ['a\u0007b', 'U+0007'],
    ['a\u0085b', 'U+0085'],
    ['a\u2028b', 'U+2028'],
    ['a\u200db', 'U+200D'], // a joiner between letters
    ['\u200d\u{1f4bb}', 'U+200D'], // a joiner with nothing before
    ['\u{1f469}\u200d', 'U+200D'], // a joiner with nothing after
    ['\u{1f469}\u200d\u200d\u{1f4bb}', 'U+200D'],
    ['\u3164', 'U+3164'], // Hangul filler (Default_Ignorable_Code_Point)
    ['a\u115fb', 'U+115F'],
    ['a\u1160b', 'U+1160'],
    ['\uffa0', 'U+FFA0'], // halfwidth Hangul filler
    ['\u2800', 'U+2800'], // braille blank: looks like a space
    ['a\u034fb', 'U+034F'], // combining grapheme joiner
    ['a\u2060b', 'U+2060'], // word joiner
    ['\ufe0f', 'U+FE0F'], // a variation selector with nothing to select
    ['a\u3164\ufe0f', 'U+3164'],
    ['ab\uffff', 'U+FFFF'], // noncharacter (Cn): no glyph
    ['ab\ufdd0', 'U+FDD0'],
    ['ab\u0378', 'U+0378'], // unassigned (Cn)
    ['ab\ue000', 'U+E000'], // private use (Co): a font's own, tofu elsewhere
    ['\u{f0000}', 'U+F0000'],
  ])('refuses %j (%s)', (text, code) => {
    expect(firstHiddenCharacter(text)).toBe(code);
  });

  it.each([
    'Payroll export',
    'Zürich ↔ Genève',
    'שלום עולם', // right-to-left script is fine: it is the hidden controls that lie
    '\u{1f469}\u200d\u{1f4bb} laptop', // woman + ZWJ + laptop
    '\u{1f469}\u{1f3fd}\u200d\u{1f4bb}', // with a skin tone
    '\u{1f3f3}\ufe0f\u200d\u{1f308}', // rainbow flag: VS16 before the joiner
    'ok \u{1f44d}',
    'love \u2764\ufe0f', // heavy black heart + VS16
    '\u845b\u{e0100}', // an ideographic variation sequence
    '한국어 토큰',
  ])('accepts %j', (text) => {
    expect(firstHiddenCharacter(text)).toBeUndefined();
  });

  it.each(['a', 'Zürich', '\u{1f44d}', 'e\u0301', '\u{1f469}\u200d\u{1f4bb}', '한'])('finds a visible character in %j', (text) => {
    expect(hasVisibleCharacter(text)).toBe(true);
  });

  it.each(['', ' ', '\u3000', '\u0301', '\u0301\u0308', '\u3164', '\u2800', '\u034f', '\u200b'])('finds none in %j', (text) => {
    expect(hasVisibleCharacter(text)).toBe(false);
  });
});

describe('tokenNameKey (one key for names that display alike or differ only in case)', () => {
  it.each([
    ['NFC and NFD', ['caf\u00e9', 'cafe\u0301', 'CAFE\u0301', 'CAF\u00c9'], 'caf\u00e9'],
    ['ß, SS and capital sharp s ẞ', ['Straße', 'STRASSE', 'strasse', 'STRA\u1e9eE'], 'strasse'],
    ['final and non-final sigma', ['ΣΑΣ', 'σας', 'σασ', 'Σας'], 'σασ'],
    ['full-width letters', ['\uff28\uff32', 'HR', 'hr', '\uff48\uff52'], 'hr'],
    ['the Kelvin sign', ['\u212a', 'K', 'k'], 'k'],
    ['dotted capital I', ['\u0130stanbul', 'ISTANBUL', 'istanbul'], 'istanbul'],
    ['a ligature', ['\ufb01le', 'FILE'], 'file'],
  ])('folds %s to one key', (_label, spellings, key) => {
    for (const name of spellings) expect(tokenNameKey(name)).toBe(key);
  });

  it.each([
    '\u{1f469}\u200d\u{1f4bb}', // woman + ZWJ + laptop: the joiner stays
    '\u{1f469}\u{1f3fd}\u200d\u{1f4bb}',
    '\u{1f3f3}\ufe0f\u200d\u{1f308}',
    'love \u2764\ufe0f',
    '  spaced  out  ', // not trimmed
    '100%_done\\',
    '한국어 토큰',
  ])('leaves %j as it is', (name) => {
    expect(tokenNameKey(name)).toBe(name);
  });

  it('keeps names apart that differ in more than case and form', () => {
    expect(tokenNameKey('cafe')).not.toBe(tokenNameKey('café'));
    expect(tokenNameKey('HR API')).not.toBe(tokenNameKey('HRAPI'));
    expect(tokenNameKey('Payroll_Export')).not.toBe(tokenNameKey('payroll-export'));
  });

  it('is a key of its own key', () => {
    for (const name of ['STRA\u1e9eE', 'ΣΑΣ', 'cafe\u0301', '\u0130', '\uff28\uff32', '\u0390', '\u1f88']) {
      expect(tokenNameKey(tokenNameKey(name))).toBe(tokenNameKey(name));
    }
  });
});

describe('characterCount (SPEC "1 to 64 characters": characters as a reader counts them)', () => {
  it.each([
    ['ASCII', 'Payroll_Integration', 19],
    ['é composed (NFC)', 'caf\u00e9', 4],
    ['é decomposed (NFD)', 'cafe\u0301', 4],
    ['a flag', '🇫🇷', 1],
    ['a skin tone', '👍🏽', 1],
    ['a ZWJ sequence (woman + ZWJ + laptop)', '👩‍💻', 1],
    ['CJK', '系统', 2],
    ['empty', '', 0],
  ])('%s', (_label, text, n) => {
    expect(characterCount(text)).toBe(n);
  });

  it('with a limit, counts no further than one past it (a long text would cost seconds: the count grows quadratically)', () => {
    expect(characterCount('x'.repeat(200_000), 64)).toBe(65);
    expect(characterCount('👩‍💻'.repeat(50_000), 64)).toBe(65);
    expect(characterCount('x'.repeat(64), 64)).toBe(64);
    expect(characterCount('cafe\u0301', 64)).toBe(4);
  });
});

describe('longestCharacter (code points in the longest grapheme cluster)', () => {
  it.each([
    ['ASCII', 'abc', 1],
    ['é decomposed', 'cafe\u0301', 2],
    ['kiss with two skin tones (10)', '🧑🏻\u200d❤️\u200d💋\u200d🧑🏿', 10],
    ['a letter under 20 marks', `a${'\u0301'.repeat(20)}`, 21],
    ['empty', '', 0],
  ])('%s', (_label, text, n) => {
    expect(longestCharacter(text)).toBe(n);
  });
});

describe('isEmailAddress (an administrator\'s address: RFC 5322 dot-atom at an LDH domain)', () => {
  it.each([
    'a@example.com',
    'first.last+tag@example.com',
    "o'brien@example.com",
    'a&b@example.com',
    'a/b=c@example.com',
    'x!#$%*^_`{|}~-@example.com',
    'a@sub.example.co.uk',
    'a@xn--exmple-cua.com',
    'a@123.example',
    'a@xn--p1ai.xn--p1ai',
    `${'a'.repeat(64)}@example.com`,
  ])('takes %s', (address) => {
    expect(isEmailAddress(address)).toBe(true);
  });

  it.each([
    'a@localhost', // one label
    '.a@example.com',
    'a.@example.com',
    'a..b@example.com',
    'a b@example.com',
    'a,b@example.com',
    'a"b@example.com',
    'a<b>@example.com',
    'a@b@example.com',
    'a@-example.com',
    'a@example-.com',
    'a@example.com.',
    'a@exämple.com', // an internationalised domain is taken as its A-label
    'ä@example.com',
    'a@[192.0.2.1]',
    'a\n@example.com',
    '',
    `${'a'.repeat(250)}@example.com`, // over 254 characters
    `${'a'.repeat(65)}@example.com`, // a local part over 64 characters
    'x@127.0.0.1', // an IP address is no domain
    'x@example.123', // a top-level label is never all digits
    'x@a.b', // nor one letter
  ])('refuses %j', (address) => {
    expect(isEmailAddress(address)).toBe(false);
  });
});
