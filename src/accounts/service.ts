import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { recordAudit } from '../audit/index.js';
import type { Db } from '../db/index.js';
import { isUniqueViolation } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError } from '../errors.js';
import { ConfigError } from '../config/index.js';
import { firstHiddenCharacter, hasVisibleCharacter, isEmailAddress, normaliseEmail } from '../text.js';
import { generatePassword, hashPassword, newPassword } from './passwords.js';
import * as q from './queries.js';

/**
 * `sat admin add` arguments (strict): organisation name `org` (visible text, at most 100 characters), `email`
 * (normalised, then checked as an address) and an optional `password`.
 */
export const addAdminInput = z
  .object({
    org: z
      .string()
      .trim()
      .min(1, 'organisation name is required')
      .max(100)
      .refine((s) => firstHiddenCharacter(s) === undefined, 'no invisible, control, format, bidirectional, private-use or unassigned characters')
      .refine((s) => s.length === 0 || hasVisibleCharacter(s), 'at least one visible character'),
    email: z.string().transform(normaliseEmail).refine(isEmailAddress, 'must be an email address'),
    password: newPassword.optional(),
  })
  .strict();
export type AddAdminInput = z.infer<typeof addAdminInput>;

export interface AddAdminResult {
  organisation: { id: string; name: string; created: boolean };
  admin: { id: string; email: string };
  /** Set only when no password was given: shown once to whoever ran the command. */
  generated_password?: string;
}

/**
 * Who adds an administrator outside the admin API, as the audit log names them (actor_id null): `cli` for
 * `sat admin add`, `server` for the first start's administrator from ADMIN_EMAIL (ensureFirstAdmin).
 */
export type AdminAddedBy = 'cli' | 'server';

/**
 * Creates the organisation when it is new, then an administrator in it (SPEC "Running it": `sat admin add`).
 * With `by`, records `admin.added` (SPEC "Administrators" audit list) in the same transaction: actor `by`, the new
 * administrator as subject_admin, details `{organisation_created: true}` when the organisation is new. Without
 * `by` nothing is audited (test and benchmark seeding only). The password is hashed before the transaction opens
 * (no slow work inside a transaction). AppError conflict when the address is already an administrator.
 */
export async function addAdmin(db: Db, input: AddAdminInput, by?: AdminAddedBy): Promise<AddAdminResult> {
  const generatedPassword = input.password === undefined ? generatePassword() : undefined;
  const passwordHash = await hashPassword(input.password ?? (generatedPassword as string));
  try {
    return await db.transaction(async (trx) => {
      let created = false;
      let org = await q.findOrganisationByName(trx, input.org);
      if (!org) {
        org = await q.insertOrganisation(trx, { id: randomUUID(), name: input.org });
        created = true;
      }
      const admin = await q.insertAdmin(trx, {
        id: randomUUID(),
        organisation_id: org.id,
        email: input.email,
        password_hash: passwordHash,
      });
      if (by) {
        await recordAudit(trx, {
          organisation_id: org.id,
          actor_id: null,
          actor_email: by,
          action: 'admin.added',
          subject_admin: { id: admin.id, email: admin.email },
          details: created ? { organisation_created: true } : null,
        });
      }
      return {
        organisation: { id: org.id, name: org.name, created },
        admin: { id: admin.id, email: admin.email },
        ...(generatedPassword ? { generated_password: generatedPassword } : {}),
      };
    });
  } catch (err) {
    if (isUniqueViolation(err, 'admins_email_uq') || isUniqueViolation(err, 'admins_email_key_uq')) {
      throw new AppError('conflict', `an administrator with the email ${input.email} already exists`, [
        { path: 'email', message: 'already registered' },
      ]);
    }
    if (isUniqueViolation(err, 'organisations_name_uq')) {
      // Another process created the organisation between our read and insert: once more finds it.
      return addAdmin(db, { ...input, password: input.password ?? (generatedPassword as string) }, by);
    }
    throw err;
  }
}

/**
 * First start with no administrator (SPEC "Running it"): creates one for the default organisation
 * from ADMIN_EMAIL/ADMIN_PASSWORD, or with a generated password that the caller prints once (ConfigError when
 * ADMIN_EMAIL is not an address the server takes (isEmailAddress) or ADMIN_PASSWORD breaks the new-password rule,
 * 12 to 256 characters; both ignored once an administrator exists). `beforeGenerating` runs just before an
 * administrator with a generated password is created (a throw stops it: nothing is created). Audited as
 * `admin.added` by `server` (no administrator or operator command did it; like the policy's `policy` actor).
 */
export async function ensureFirstAdmin(
  deps: Pick<Deps, 'config' | 'db'>,
  options: { beforeGenerating?: () => void } = {},
): Promise<AddAdminResult | undefined> {
  const { config, db } = deps;
  if ((await q.countAdmins(db.knex)) > 0) return undefined;
  if (config.adminEmail !== undefined && !isEmailAddress(normaliseEmail(config.adminEmail))) {
    throw new ConfigError(['ADMIN_EMAIL: must be an email address (it becomes the first administrator\'s address)']);
  }
  if (config.adminPassword !== undefined) {
    const checked = newPassword.safeParse(config.adminPassword);
    if (!checked.success) {
      throw new ConfigError([`ADMIN_PASSWORD: ${checked.error.issues[0]?.message ?? 'is not a valid password'} (it becomes the first administrator's password)`]);
    }
  }
  // A password is about to be generated: the caller makes sure it can hand it over (its error stops the creation).
  if (config.adminPassword === undefined) options.beforeGenerating?.();
  try {
    return await addAdmin(db.knex, {
      org: config.defaultOrganisation,
      email: config.adminEmail ?? 'admin@localhost.localdomain',
      ...(config.adminPassword ? { password: config.adminPassword } : {}),
    }, 'server');
  } catch (err) {
    // Another instance created the first administrator at the same moment.
    if (err instanceof AppError && err.code === 'conflict') return undefined;
    throw err;
  }
}
