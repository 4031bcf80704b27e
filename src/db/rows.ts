// Row types, one per table; snake_case like the columns and the API.

export interface OrganisationRow {
  id: string;
  name: string;
  created_at: Date;
}

export interface AdminRow {
  id: string;
  organisation_id: string;
  email: string;
  password_hash: string;
  created_at: Date;
}

export interface TokenRow {
  id: string;
  organisation_id: string;
  name: string;
  client_id: string;
  secret_hash: string;
  services: string[];
  expires_at: Date;
  created_at: Date;
  created_by: string | null;
  last_used_at: Date | null;
}

export interface SigningKeyRow {
  kid: string;
  alg: string;
  private_jwk: Record<string, unknown> | string;
  created_at: Date;
  not_before: Date;
}
