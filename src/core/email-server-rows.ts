/**
 * What an email server row means, without the database: its driver, its status and search
 * text, its checks and its audit form. EmailServerService (email-servers.ts) reads and writes.
 */

import { appOnlyMethodOf } from "../drivers/oauth-fields.js";
import { driverIds, findDriver } from "../drivers/registry.js";
import type { Driver, DriverField } from "../drivers/types.js";
import { type FieldProblem, fieldError, MailroomError } from "../kernel/errors.js";
import type { Settings } from "../kernel/settings.js";
import { hasControlCharacters, isEmailAddress } from "../kernel/validate.js";
import type { EmailServersTable } from "../storage/schema.js";
import { SECRET_CHANGED, SECRET_UNCHANGED } from "./audit.js";
import { grantNotice } from "./grant-notice.js";
import { defaultValue, missingSettings } from "./settings.js";

export type ServerStatus = "ready" | "incomplete" | "not_authorized" | "reauthorization_required" | "failing";

export interface EmailServerInput {
  name: string;
  driver: string;
  fromAddress?: string;
  fromName?: string;
  settings?: Record<string, unknown>;
  isDefault?: boolean;
}

export type Row = EmailServersTable;
export type SecretMap = Record<string, string>;

export const NAME_MAX = 64;

export function parseJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

export function requireDriver(id: unknown): Driver {
  const driver = typeof id === "string" ? findDriver(id) : undefined;
  if (!driver) {
    throw new MailroomError("unknown_driver", `Unknown driver '${String(id)}': use one of ${driverIds.join(", ")}.`, {
      field: "driver",
      validDrivers: driverIds,
    });
  }
  return driver;
}

export function driverOf(row: Row): Driver {
  return requireDriver(row.driver);
}

export function editableField(driver: Driver, key: string) {
  const f = driver.fields.find((x) => x.key === key);
  if (!f) {
    throw new MailroomError(
      "unknown_setting",
      `The ${driver.label} driver has no setting '${key}'; its settings are ${driver.fields.map((x) => x.key).join(", ")}.`,
      { field: key, settings: driver.fields.map((x) => x.key) },
    );
  }
  if (f.readOnly) {
    throw new MailroomError("read_only_setting", `'${f.label}' is set by Mailroom and cannot be edited or cleared.`, {
      field: key,
    });
  }
  return f;
}

export function resetSetting(settings: Settings, driver: Driver, key: string): void {
  const f = driver.fields.find((x) => x.key === key);
  const fallback = f ? defaultValue(f) : undefined;
  if (fallback === undefined) delete settings[key];
  else settings[key] = fallback;
}

export function checkServerFields(input: EmailServerInput): { name: string; fromAddress: string; fromName: string } {
  const problems: FieldProblem[] = [];
  const name = typeof input.name === "string" ? input.name.trim() : "";
  if (typeof input.name !== "string" || name.length < 1 || name.length > NAME_MAX) {
    problems.push({ field: "name", message: `must be 1 to ${NAME_MAX} characters` });
  } else if (hasControlCharacters(input.name)) {
    // Checked before trimming: a trailing CR/LF is refused, not silently dropped.
    problems.push({ field: "name", message: "must not contain control characters such as CR or LF" });
  }
  const fromAddress = typeof input.fromAddress === "string" ? input.fromAddress.trim() : "";
  if (fromAddress !== "" && !isEmailAddress(fromAddress)) {
    problems.push({ field: "fromAddress", message: "must be an email address, e.g. noreply@example.com" });
  }
  const fromName = typeof input.fromName === "string" ? input.fromName.trim() : "";
  if (typeof input.fromName === "string" && hasControlCharacters(input.fromName)) {
    problems.push({ field: "fromName", message: "must not contain control characters such as CR or LF" });
  } else if (fromName.length > 200) {
    problems.push({ field: "fromName", message: "must be at most 200 characters" });
  }
  if (problems.length) {
    // A line break in a name is a header injection attempt: its own code, named first.
    const control = problems.filter((p) => p.message.includes("control characters"));
    if (control.length) throw fieldError("control_characters", [...control, ...problems.filter((p) => !control.includes(p))]);
    throw fieldError("validation_failed", problems);
  }
  return { name, fromAddress, fromName };
}

export function missingOf(driver: Driver, row: Row, settings: Settings, secretKeys: string[]): string[] {
  const missing = missingSettings(driver, settings, secretKeys);
  return row.from_address === "" ? ["fromAddress", ...missing] : missing;
}

/** Recomputes status and search text from the row's own columns. */
export function refreshDerived(row: Row): void {
  const driver = driverOf(row);
  const settings = parseJson<Settings>(row.settings);
  const secretKeys = Object.keys(parseJson<SecretMap>(row.secrets));
  row.status = computeStatus(driver, row, missingOf(driver, row, settings, secretKeys), settings);
  const words = [row.name, driver.id, driver.label, row.from_address, row.from_name];
  for (const f of driver.fields) {
    if (f.secret || f.readOnly || settings[f.key] === undefined) continue;
    words.push(f.label, String(settings[f.key]));
  }
  row.search_text = words.join("\n").toLowerCase();
}

export function computeStatus(driver: Driver, row: Row, missing: string[], settings: Settings): ServerStatus {
  if (missing.length) return "incomplete";
  if (row.fault === "reauthorization_required") return "reauthorization_required";
  // App-only credentials need no person to authorize: the server is ready once complete.
  if (driver.oauthProvider && !appOnlyMethodOf(driver, settings) && !row.oauth_account) return "not_authorized";
  if (row.fault === "failing") return "failing";
  return "ready";
}

export function statusDetail(row: Row, missing: string[]): string | null {
  if (missing.length) {
    // The labels the form shows ("Client secret"), not the API's keys ("clientSecret").
    const fields = driverOf(row).fields;
    const label = (key: string) => (key === "fromAddress" ? "From address" : (fields.find((f) => f.key === key)?.label ?? key));
    return `Missing: ${missing.map(label).join(", ")}.`;
  }
  if (row.fault) return row.fault_detail;
  if (row.status === "not_authorized") return "Authorize an account to send through this server.";
  if (row.oauth_account) return grantNotice(row);
  return null;
}

/** What the audit log keeps: the server without secrets, each secret as changed/unchanged. */
export function auditView(row: Row, changedSecrets: string[]): Record<string, unknown> {
  const driver = findDriver(row.driver);
  const settings: Record<string, unknown> = { ...parseJson<Settings>(row.settings) };
  const secretKeys = Object.keys(parseJson<SecretMap>(row.secrets));
  for (const f of driver?.fields.filter((x) => x.secret) ?? []) {
    if (changedSecrets.includes(f.key)) settings[f.key] = SECRET_CHANGED;
    else if (secretKeys.includes(f.key)) settings[f.key] = SECRET_UNCHANGED;
  }
  return {
    name: row.name,
    driver: row.driver,
    fromAddress: row.from_address,
    fromName: row.from_name,
    isDefault: row.is_default === 1,
    settings,
  };
}

/** A new row: not the default, no fault, no OAuth grant; status and search text to be derived. */
export function freshRow(
  fields: Pick<Row, "id" | "name" | "driver" | "from_address" | "from_name" | "settings" | "secrets">,
): Row {
  const now = Date.now();
  return {
    ...fields,
    is_default: null,
    status: "incomplete",
    fault: null,
    fault_detail: null,
    fault_at: null,
    search_text: "",
    oauth_account: null,
    oauth_scopes: null,
    oauth_authorized_at: null,
    oauth_expires_at: null,
    created_at: now,
    updated_at: now,
  };
}

/** The error for a settings object with problems: a mistyped key is unknown_setting, as on PATCH. */
export function settingsError(parsed: { problems: FieldProblem[]; unknownKeys: string[] }): MailroomError {
  if (!parsed.unknownKeys.length) return fieldError("invalid_setting", parsed.problems);
  const first = `settings.${parsed.unknownKeys[0]}`;
  return fieldError("unknown_setting", [
    ...parsed.problems.filter((p) => p.field === first),
    ...parsed.problems.filter((p) => p.field !== first),
  ]);
}

/**
 * The refusal of a change that would send saved secrets somewhere else: names what changed
 * and each secret to enter again, by label (details: one problem per secret, for the form).
 */
export function secretDestinationChanged(driver: Driver, changed: DriverField[], secretKeys: string[]): MailroomError {
  const secrets = driver.fields.filter((f) => f.secret && secretKeys.includes(f.key));
  const list = (fields: DriverField[]) => fields.map((f) => f.label).join(", ");
  const what = list(changed);
  return new MailroomError(
    "secret_destination_changed",
    `${what} changed, so enter ${list(secrets)} again in the same request: Mailroom sends a saved secret only to the destination it was saved for.`,
    secrets.map((f) => ({ field: `settings.${f.key}`, message: `enter it again: ${what} changed` })),
  );
}
