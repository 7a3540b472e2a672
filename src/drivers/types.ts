/**
 * A driver is one way of sending mail. Its field list drives everything else: the admin
 * form, validation, secret masking, log redaction, search and the OpenAPI description.
 */
export type FieldType =
  | "text" // free text
  | "integer"
  | "boolean"
  | "select" // one of `options`
  | "host" // a DNS name or IP address
  | "url" // http(s) URL
  | "email" // one address
  | "list"; // list of strings (e.g. allowed from addresses)

export interface FieldOption {
  value: string;
  label: string;
}

export interface DriverField {
  key: string;
  label: string;
  type: FieldType;
  /** What an unset setting means; applied when a server is created or a setting cleared. */
  default?: string | number | boolean | string[] | null;
  required: boolean;
  /** Write-only: encrypted at rest, never returned, masked in logs and exports. */
  secret: boolean;
  /** Derived by Mailroom (redirect URI, OAuth grant facts): shown, never edited. */
  readOnly: boolean;
  help: string;
  options?: FieldOption[];
  min?: number;
  max?: number;
  placeholder?: string;
  /**
   * Identifies where the server's secrets and OAuth grant go (host, port, account, region…).
   * A saved secret is only ever sent to the destination it was saved for: changing such a
   * field needs the secrets again, and drops an OAuth grant.
   */
  destination?: boolean;
  /** PEM or JSON pasted whole: line breaks allowed, up to 20,000 characters. */
  multiline?: boolean;
  /** Applies only while setting `key` has one of `values` (e.g. one authentication method): hidden, ignored and not required otherwise. */
  when?: { key: string; values: string[] };
  /** The driver's own check of a value (e.g. a service account key's shape); returns the problem, or null. */
  check?(value: string): string | null;
}

import type { ErrorEntry, FieldProblem } from "../kernel/errors.js";
import type { OperatorPolicy } from "../kernel/operator-policy.js";
import type { Settings, SettingValue } from "../kernel/settings.js";
import type { Transport, TransportContext } from "../kernel/transport.js";

/** What the operator's configuration changes in a field (e.g. the sendmail commands as options). */
export type OperatorFieldPatch = Partial<Pick<DriverField, "options" | "default" | "help">>;

/** Facts a driver needs to derive its read-only settings. */
export interface DeriveContext {
  publicUrl: string;
  /** The server's settings, when there is a server (e.g. a certificate to show the thumbprint of). */
  settings?: Settings;
}

/** How an OAuth driver gets its tokens: a person authorizes (delegated), or the app alone. */
export type AuthMethod = "delegated" | AppOnlyMethod;
/**
 * App-only credentials, no person in the loop: a client secret or a certificate (Microsoft
 * client credentials), or a service account with domain-wide delegation (Google).
 */
export type AppOnlyMethod = "client_secret" | "certificate" | "service_account";

/** What an OAuth driver offers besides the delegated flow: its methods and the scope it asks for. */
export interface AppOnlyAuth {
  methods: AppOnlyMethod[];
  /** The app-only scope, e.g. https://outlook.office365.com/.default or https://mail.google.com/. */
  scope: string;
}

export interface Driver {
  id: string;
  label: string;
  description: string;
  fields: DriverField[];
  /**
   * Settings that pass this driver's validation (secrets included, all made up): what the
   * shared tests create a server of this driver with, so a new driver needs no test edits.
   */
  example: Record<string, SettingValue>;
  /**
   * The driver's own error codes (`<id>_…`), declared with `declareDriverErrors` in its
   * errors.ts and documented in its README.md; prefer the shared codes of src/kernel/errors.ts.
   */
  errors?: Readonly<Record<string, ErrorEntry>>;
  /** The provider's own daily sending limit, used as the default of messagesPerDay. */
  defaultMessagesPerDay?: number;
  /** OAuth drivers send only once an account is authorized. */
  oauthProvider?: "google" | "microsoft";
  /**
   * The scopes this driver asks its OAuth provider for, when not the provider's SMTP ones
   * (an HTTP API needs its own): `request` goes to the consent screen and every refresh;
   * a grant without one of `sending` (a scope's spellings: Microsoft answers Graph scopes
   * without their resource) is refused at the callback.
   */
  oauthScopes?: { request: readonly string[]; sending: readonly string[] };
  /** App-only credentials the driver accepts (setting `authMethod`); absent: delegated only. */
  appOnly?: AppOnlyAuth;
  /** Values of read-only fields that come from configuration, e.g. the redirect URI. */
  derive?(ctx: DeriveContext): Record<string, string>;
  /** Forgets what the driver kept for a server that was deleted (e.g. captured mail). */
  removeData?(ctx: { dataDir: string; serverId: string }): Promise<void>;
  /**
   * Erasure: forgets the copies the driver kept for a server (captured mail) of the messages
   * `messageIds`, and of any other message whose headers name `address`. Returns how many went.
   */
  eraseAddress?(ctx: { dataDir: string; serverId: string; address: string; messageIds: ReadonlySet<string> }): Promise<number>;
  /**
   * Retention: the copies the driver keeps outside the database (captured mail), which lose
   * their body and go with their messages' (src/core/retention-copies.ts).
   */
  keptCopies?: KeptCopies;
  /** Fields whose options or default come from what the operator configured, by key. */
  operatorFields?(operator: OperatorPolicy): Record<string, OperatorFieldPatch>;
  /** Problems with where valid settings point (endpoints the operator has not allowed). */
  checkDestinations?(settings: Settings, operator: OperatorPolicy): FieldProblem[];
  /** Problems of valid settings taken together (e.g. a tenant that application credentials cannot use). */
  checkSettings?(settings: Settings): FieldProblem[];
  /** Builds the transport that sends through one server with these settings. */
  createTransport?(ctx: TransportContext): Transport;
}

/** Where a driver keeps a server's copies. */
export interface CopyFolder {
  dataDir: string;
  serverId: string;
}

/** A copy a driver keeps of one message. */
export interface KeptCopy {
  /** The copy's own id (what the driver's routes name it by). */
  id: string;
  /** The delivery log's id of the message it holds. */
  messageId: string;
  /** When it was written (ms): before its message was marked sent. */
  keptAt: number;
  bodyRemoved: boolean;
}

export interface KeptCopies {
  /** Every copy of a server, oldest first. */
  list(where: CopyFolder): Promise<KeptCopy[]>;
  /** Keeps only what names the message, dated `removedAt`; false when gone or done already. */
  removeBody(where: CopyFolder, id: string, removedAt: number): Promise<boolean>;
  /** Removes the copy; false when it was gone already. */
  remove(where: CopyFolder, id: string): Promise<boolean>;
}

type FieldSpec = Omit<DriverField, "required" | "secret" | "readOnly"> &
  Partial<Pick<DriverField, "required" | "secret" | "readOnly">>;

/** Builds a field with the common flags off unless said. */
export function field(spec: FieldSpec): DriverField {
  return { required: false, secret: false, readOnly: false, ...spec };
}
