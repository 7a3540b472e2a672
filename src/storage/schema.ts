import type { Generated } from "kysely";

/**
 * Table types. Times are epoch milliseconds (bigint on PostgreSQL, parsed to number),
 * booleans are 0/1 integers and JSON is text, so one set of queries serves both dialects.
 */
export interface EmailServersTable {
  id: string;
  name: string;
  driver: string;
  from_address: string;
  from_name: string;
  /** 1 for the default server, NULL otherwise: a unique index then allows exactly one 1. */
  is_default: number | null;
  /** JSON object of the driver's non-secret settings. */
  settings: string;
  /** JSON object of secret setting key -> ciphertext (see secrets.ts). */
  secrets: string;
  status: string;
  /** A problem found while delivering (failing, reauthorization_required), kept until fixed. */
  fault: string | null;
  fault_detail: string | null;
  fault_at: number | null;
  /** Lower-cased text the search box matches: name, driver, from address, non-secret settings. */
  search_text: string;
  created_at: number;
  updated_at: number;
}

export interface UsersTable {
  id: string;
  email: string;
  name: string;
  password_hash: string;
  is_super_admin: number;
  disabled: number;
  created_at: number;
  updated_at: number;
}

export interface GroupsTable {
  id: string;
  name: string;
  /** JSON array of permission names. */
  permissions: string;
  created_at: number;
  updated_at: number;
}

export interface UserGroupsTable {
  user_id: string;
  group_id: string;
}

export interface SessionsTable {
  /** sha256 of the cookie value: the cookie itself is never stored. */
  id: string;
  user_id: string;
  csrf_token: string;
  created_at: number;
  expires_at: number;
}

export interface ApiTokensTable {
  id: string;
  name: string;
  /** sha256 of the token's secret part. */
  token_hash: string;
  /** JSON array of permission names. */
  permissions: string;
  /** JSON array of email server ids, or NULL for every server. */
  server_ids: string | null;
  created_by: string | null;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface AuditLogTable {
  id: Generated<number>;
  at: number;
  actor_type: string;
  actor_id: string | null;
  actor_label: string;
  action: string;
  target_type: string;
  target_id: string | null;
  /** JSON, secrets replaced by "[secret changed]" / "[secret unchanged]". */
  before: string | null;
  after: string | null;
  ip: string | null;
}

export interface Database {
  email_servers: EmailServersTable;
  users: UsersTable;
  groups: GroupsTable;
  user_groups: UserGroupsTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
  audit_log: AuditLogTable;
}
