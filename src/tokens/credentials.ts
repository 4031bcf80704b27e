import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';

/**
 * Credential formats (README "Credential format"):
 *   client ID      sat_  + 22 base62 characters (131 bits)
 *   client secret  sats_ + 43 base62 characters (256 bits) + 6 base62 characters of CRC32 over everything before them
 * The prefixes let secret scanners find leaked credentials; the checksum lets them (and the token endpoint)
 * tell a real secret from a mistyped or made-up one offline.
 */
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** Prefix of every client ID (`sat_`): lets secret scanners recognise one. */
export const CLIENT_ID_PREFIX = 'sat_';
/** Prefix of every client secret (`sats_`): lets secret scanners recognise one. */
export const SECRET_PREFIX = 'sats_';
const CLIENT_ID_BODY = 22;
const SECRET_BODY = 43;
const CHECKSUM_LENGTH = 6;
const clientIdPattern = new RegExp(`^${CLIENT_ID_PREFIX}[0-9A-Za-z]{${CLIENT_ID_BODY}}$`);
const secretPattern = new RegExp(`^${SECRET_PREFIX}[0-9A-Za-z]{${SECRET_BODY + CHECKSUM_LENGTH}}$`);

/** `length` characters drawn uniformly from base62 (rejection sampling over CSPRNG bytes). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length + 8)) {
      if (byte < 248) out += ALPHABET[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** `value` as an unsigned 32-bit integer in base62, left-padded with "0" to at least `width` characters. Pure. */
export function toBase62(value: number, width: number): string {
  let n = value >>> 0;
  let out = '';
  do {
    out = ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  } while (n > 0);
  return out.padStart(width, '0');
}

/** The 6-character checksum of a client secret: CRC32 of `text` (the secret before its checksum) in base62. Pure. */
export function checksumOf(text: string): string {
  return toBase62(crc32(text), CHECKSUM_LENGTH);
}

/** A new client ID: `sat_` + 22 base62 characters from the CSPRNG (131 bits). */
export function generateClientId(): string {
  return CLIENT_ID_PREFIX + randomBase62(CLIENT_ID_BODY);
}

/** A new client secret: `sats_` + 43 base62 characters from the CSPRNG (256 bits) + their 6-character checksum. */
export function generateClientSecret(): string {
  const head = SECRET_PREFIX + randomBase62(SECRET_BODY);
  return head + checksumOf(head);
}

/** Whether `value` has the client ID format (`sat_` + 22 base62 characters). Format only, no database. Pure. */
export function isWellFormedClientId(value: string): boolean {
  return clientIdPattern.test(value);
}

/** Format and checksum check, no database: rejects typos and made-up secrets. */
export function isWellFormedSecret(value: string): boolean {
  if (!secretPattern.test(value)) return false;
  const head = value.slice(0, -CHECKSUM_LENGTH);
  return checksumOf(head) === value.slice(-CHECKSUM_LENGTH);
}

const embeddedSecret = new RegExp(`${SECRET_PREFIX}[0-9A-Za-z]{${SECRET_BODY + CHECKSUM_LENGTH}}`, 'g');

/**
 * Whether `text` holds a well-formed client secret anywhere (prefix, length and checksum): a name that does would
 * put a working credential into mails, the audit log and every list (SPEC Part 2: no secret in them). Pure.
 */
export function containsClientSecret(text: string): boolean {
  for (const [candidate] of text.matchAll(embeddedSecret)) if (isWellFormedSecret(candidate)) return true;
  return false;
}

/** SHA-256, base64url. Secrets carry 256 random bits, so a fast hash is the right one (no dictionary to slow down). */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('base64url');
}

/**
 * Constant-time check of a presented client secret against its stored hash (SHA-256, base64url, as `hashSecret`
 * makes it). False for a stored hash of another length; never throws on a mismatch.
 */
export function verifySecret(presented: string, storedHash: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = Buffer.from(storedHash, 'base64url');
  return a.length === b.length && timingSafeEqual(a, b);
}

export type SecretProblem = 'prefix' | 'length' | 'characters' | 'checksum';

/**
 * Why `value` is not a well-formed client secret (`undefined` when it is one): offline, for `sat secret check` and
 * for scanners. The problem names a part of the format, never a character of the value.
 */
export function secretFormatProblem(value: string): SecretProblem | undefined {
  if (!value.startsWith(SECRET_PREFIX)) return 'prefix';
  const body = value.slice(SECRET_PREFIX.length);
  if (body.length !== SECRET_BODY + CHECKSUM_LENGTH) return 'length';
  if (!/^[0-9A-Za-z]+$/.test(body)) return 'characters';
  return isWellFormedSecret(value) ? undefined : 'checksum';
}

/** A session, invitation or reset token (`sas_`, `sai_`, `sar_` + 43 base64url characters), standing alone. */
const embeddedAdminToken = /(?<![A-Za-z0-9_-])sa[sir]_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g;

/**
 * `text` with every working-looking credential replaced by "[REDACTED]": a well-formed client secret (prefix, length
 * and checksum) and a session or one-time token of exactly its form. Narrower than the log's redaction, which also
 * takes words that only begin like one: for text kept for people to read, such as a leak report's place, where
 * `…/sas_etl/…` is a folder name. Pure.
 */
export function redactCredentials(text: string): string {
  return text
    .replace(embeddedSecret, (candidate) => (isWellFormedSecret(candidate) ? '[REDACTED]' : candidate))
    .replace(embeddedAdminToken, '[REDACTED]');
}
