// The ordered list of migrations: no directory globbing, so the same list works from src/ and dist/.
import type { Knex } from 'knex';
import * as m0001 from './0001_initial.js';
import * as m0002 from './0002_admin.js';
import * as m0003 from './0003_mail.js';
import * as m0010 from './0010_resource_servers.js';
import * as m0020 from './0020_signing_keys_sealed.js';
import * as m0040 from './0040_admins.js';
import * as m0050 from './0050_leaks.js';
import * as m0060 from './0060_normalise_emails.js';
import * as m0061 from './0061_revoked_by_client.js';
import * as m0070 from './0070_lifecycle.js';
import * as m0080 from './0080_sender_constrained.js';
import * as m0090 from './0090_secret_rotation.js';
import * as m0100 from './0100_token_limits.js';
import * as m0110 from './0110_audit_by_token.js';
import * as m0120 from './0120_token_name_key.js';
import * as m0130 from './0130_failed_sign_in_retention.js';
import * as m0140 from './0140_leaked_secret.js';
import * as m0150 from './0150_signing_key_token_ttl.js';
import * as m0160 from './0160_password_reset_mail_idx.js';
import * as m0170 from './0170_mail_withdrawn.js';
import * as m0180 from './0180_expiry_and_bucket_idx.js';

export interface Migration {
  name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

export const migrations: readonly Migration[] = [
  { name: '0001_initial', ...m0001 },
  { name: '0002_admin', ...m0002 },
  { name: '0003_mail', ...m0003 },
  { name: '0010_resource_servers', ...m0010 },
  { name: '0020_signing_keys_sealed', ...m0020 },
  { name: '0040_admins', ...m0040 },
  { name: '0050_leaks', ...m0050 },
  { name: '0060_normalise_emails', ...m0060 },
  { name: '0061_revoked_by_client', ...m0061 },
  { name: '0070_lifecycle', ...m0070 },
  { name: '0080_sender_constrained', ...m0080 },
  { name: '0090_secret_rotation', ...m0090 },
  { name: '0100_token_limits', ...m0100 },
  { name: '0110_audit_by_token', ...m0110 },
  { name: '0120_token_name_key', ...m0120 },
  { name: '0130_failed_sign_in_retention', ...m0130 },
  { name: '0140_leaked_secret', ...m0140 },
  { name: '0150_signing_key_token_ttl', ...m0150 },
  { name: '0160_password_reset_mail_idx', ...m0160 },
  { name: '0170_mail_withdrawn', ...m0170 },
  { name: '0180_expiry_and_bucket_idx', ...m0180 },
];
