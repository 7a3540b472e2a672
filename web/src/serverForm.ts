/**
 * The email server form's state and how it becomes an API request. Settings are kept as the
 * form shows them (text, a checkbox, lines of a list) and turned into typed values on save.
 */
import type { Driver, DriverField, EmailServer, SettingValue } from "./api";

export type FormValue = string | boolean;

/** What happens to a stored secret on save: kept, replaced by a new value, or cleared. */
export type SecretAction = "keep" | "replace" | "clear";

export interface Draft {
  name: string;
  driver: string;
  fromAddress: string;
  fromName: string;
  settings: Record<string, FormValue>;
  secrets: Record<string, SecretAction>;
}

/**
 * Keys of an OAuth driver's connect panel: shown there, not among the other settings. The
 * tenant (Microsoft Entra) is copied from the same app registration as the client ID.
 */
export const OAUTH_CLIENT_KEYS = ["redirectUri", "tenant", "clientId", "clientSecret"];
export const OAUTH_GRANT_KEYS = ["authorizedAccount", "grantedScopes", "authorizedAt"];

/** Keys of the app-only credentials, shown in their own panel when an application method is chosen. */
export const APP_CREDENTIAL_KEYS = [
  "tenant",
  "clientId",
  "clientSecret",
  "certificate",
  "privateKey",
  "certificateThumbprint",
  "serviceAccountKey",
];

/** Whether a field applies to the draft (its `when` holds), as the server decides it; the form hides the others. */
export function fieldApplies(driver: Driver, field: DriverField, settings: Record<string, FormValue>): boolean {
  if (!field.when) return true;
  const on = driver.fields.find((f) => f.key === field.when?.key);
  if (!on) return true;
  const value = settings[on.key] ?? defaultFormValue(on);
  return field.when.values.includes(String(value === "" ? defaultFormValue(on) : value));
}

/** The chosen app-only method of an OAuth draft, or null for the delegated flow. */
export function appOnlyMethod(driver: Driver, draft: Draft): string | null {
  const method = String(draft.settings.authMethod ?? "");
  return driver.appOnly?.methods.includes(method) ? method : null;
}

export function toFormValue(field: DriverField, value: SettingValue | null | undefined): FormValue {
  if (field.type === "boolean") return value === true;
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.join("\n");
  return String(value);
}

export function defaultFormValue(field: DriverField): FormValue {
  return toFormValue(field, field.default ?? null);
}

export function editableFields(driver: Driver): DriverField[] {
  return driver.fields.filter((f) => !f.readOnly && !f.secret);
}

/** A new server's form for a driver: every setting at its default. */
export function emptyDraft(driver: Driver, base?: Partial<Draft>): Draft {
  return {
    name: base?.name ?? "",
    driver: driver.id,
    fromAddress: base?.fromAddress ?? "",
    fromName: base?.fromName ?? "",
    settings: Object.fromEntries(editableFields(driver).map((f) => [f.key, defaultFormValue(f)])),
    secrets: Object.fromEntries(driver.fields.filter((f) => f.secret).map((f) => [f.key, "keep" as SecretAction])),
  };
}

export function draftOf(server: EmailServer, driver: Driver): Draft {
  return {
    name: server.name,
    driver: server.driver,
    fromAddress: server.fromAddress,
    fromName: server.fromName,
    settings: Object.fromEntries(
      editableFields(driver).map((f) => [f.key, toFormValue(f, server.settings[f.key] as SettingValue | null)]),
    ),
    secrets: Object.fromEntries(driver.fields.filter((f) => f.secret).map((f) => [f.key, "keep" as SecretAction])),
  };
}

/** Whether a secret will be set after saving this draft. */
export function secretWillBeSet(key: string, draft: Draft, saved: EmailServer | null): boolean {
  const action = draft.secrets[key];
  if (action === "replace") return true;
  if (action === "clear") return false;
  if (!saved || saved.driver !== draft.driver) return false;
  const stored = saved.settings[key];
  return typeof stored === "object" && stored !== null && !Array.isArray(stored) && stored.set === true;
}

/**
 * The settings that say where secrets go (host, port, username, client ID…) and that the
 * draft changed from the saved server. Mailroom sends a saved secret only to the destination
 * it was saved for, so after such a change every saved secret must be typed again.
 */
export function changedDestinations(draft: Draft, driver: Driver, saved: EmailServer | null): DriverField[] {
  if (!saved || saved.driver !== draft.driver) return [];
  return editableFields(driver).filter(
    (f) => f.destination && draft.settings[f.key] !== toFormValue(f, saved.settings[f.key] as SettingValue | null),
  );
}

/** Why a kept secret must be typed again (the changed destination settings), or null when it need not. */
export function reentryReason(key: string, draft: Draft, driver: Driver, saved: EmailServer | null): string | null {
  if ((draft.secrets[key] ?? "keep") !== "keep" || !secretWillBeSet(key, draft, saved)) return null;
  const changed = changedDestinations(draft, driver, saved);
  return changed.length ? `${changed.map((f) => f.label).join(", ")} changed` : null;
}

export interface Payload {
  name: string;
  driver: string;
  fromAddress: string;
  fromName: string;
  settings: Record<string, SettingValue | null>;
}

/**
 * The request body for a save or a draft test, and the problems found before asking the
 * server (keys as the API names them: "settings.port").
 */
export function toPayload(
  draft: Draft,
  driver: Driver,
  secretValues: Record<string, string>,
  saved: EmailServer | null = null,
): { payload: Payload; problems: Record<string, string> } {
  const settings: Record<string, SettingValue | null> = {};
  const problems: Record<string, string> = {};
  for (const f of driver.fields) {
    // Fields of another authentication method are hidden, and not sent.
    if (f.readOnly || !fieldApplies(driver, f, draft.settings)) continue;
    if (f.secret) {
      const action = draft.secrets[f.key] ?? "keep";
      const reentry = reentryReason(f.key, draft, driver, saved);
      if (reentry) {
        const value = secretValues[f.key] ?? "";
        if (value === "") problems[`settings.${f.key}`] = `Enter it again: ${reentry}.`;
        else settings[f.key] = value;
      } else if (action === "clear") settings[f.key] = null;
      else if (action === "replace") {
        const value = secretValues[f.key] ?? "";
        if (value === "") problems[`settings.${f.key}`] = "Type the new value, or cancel the replacement.";
        else settings[f.key] = value;
      }
      continue;
    }
    const raw = draft.settings[f.key];
    if (f.type === "boolean") {
      settings[f.key] = raw === true;
    } else if (f.type === "list") {
      settings[f.key] = String(raw ?? "")
        .split(/\r?\n/)
        .map((line) => line.trim())
        .filter(Boolean);
    } else if (f.type === "integer") {
      const text = String(raw ?? "").trim();
      if (text === "") settings[f.key] = null;
      else if (!/^-?\d+$/.test(text)) problems[`settings.${f.key}`] = "must be a whole number";
      else settings[f.key] = Number(text);
    } else {
      const text = String(raw ?? "").trim();
      settings[f.key] = text === "" ? null : text;
    }
  }
  return {
    payload: {
      name: draft.name.trim(),
      driver: draft.driver,
      fromAddress: draft.fromAddress.trim(),
      fromName: draft.fromName.trim(),
      settings,
    },
    problems,
  };
}

export function sameDraft(a: Draft, b: Draft): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
