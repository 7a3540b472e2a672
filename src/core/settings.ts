import { appOnlyMethodOf } from "../drivers/oauth-fields.js";
import type { Driver, DriverField } from "../drivers/types.js";
import type { FieldProblem } from "../kernel/errors.js";
import type { OperatorPolicy } from "../kernel/operator-policy.js";
import type { Settings, SettingValue } from "../kernel/settings.js";
import { hasControlCharacters, isEmailAddress, isHost, isHttpUrl } from "../kernel/validate.js";
import { isEndpointAllowed, isLinkLocalOrMetadata } from "../transport/operator.js";

const MAX_TEXT = 2000;
/** A PEM certificate chain or a service account's JSON key fits; nothing pasted by mistake does. */
const MAX_MULTILINE = 20_000;

/** Control characters other than the line breaks and tabs a pasted PEM or JSON holds. */
function badControl(f: DriverField, value: string): boolean {
  return hasControlCharacters(f.multiline ? value.replace(/[\r\n\t]/g, "") : value);
}

/** Whether a field applies to these settings (its `when` holds); a condition on a setting the driver lacks always holds. */
export function applies(driver: Driver, f: DriverField, settings: Settings): boolean {
  if (!f.when) return true;
  const on = driver.fields.find((x) => x.key === f.when?.key);
  if (!on) return true;
  const value = settings[on.key] ?? defaultValue(on);
  return f.when.values.includes(String(value));
}

/** Checks a new secret value (not blank): its type, size, characters and the driver's own check. */
export function checkSecret(f: DriverField, raw: unknown): { value: string } | { problem: string } {
  if (typeof raw !== "string") return { problem: "must be a string" };
  const max = f.multiline ? MAX_MULTILINE : MAX_TEXT;
  if (raw.length > max) return { problem: `must be at most ${max} characters` };
  if (badControl(f, raw)) return { problem: "must not contain control characters" };
  const problem = f.check?.(raw);
  return problem ? { problem } : { value: raw };
}

/** Checks one non-secret value; returns the normalized value or a problem message. */
export function checkValue(f: DriverField, raw: unknown): { value: SettingValue } | { problem: string } {
  switch (f.type) {
    case "integer": {
      const range = f.min !== undefined && f.max !== undefined ? ` from ${f.min} to ${f.max}` : "";
      if (typeof raw === "string" && /^\s*-?\d+\s*$/.test(raw)) {
        // The usual slip: "587" from a form field. Say exactly what to send instead.
        return { problem: `must be a whole number${range} sent as a JSON number: ${raw.trim()}, not "${raw}"` };
      }
      if (typeof raw !== "number" || !Number.isInteger(raw)) return { problem: `must be a whole number${range}` };
      if (f.min !== undefined && raw < f.min) return { problem: `must be at least ${f.min}` };
      if (f.max !== undefined && raw > f.max) return { problem: `must be at most ${f.max}` };
      return { value: raw };
    }
    case "boolean":
      return typeof raw === "boolean" ? { value: raw } : { problem: "must be true or false" };
    case "list": {
      if (!Array.isArray(raw) || raw.some((item) => typeof item !== "string")) return { problem: "must be a list of strings" };
      const items = (raw as string[]).map((item) => item.trim()).filter((item) => item !== "");
      if (items.some(hasControlCharacters)) return { problem: "must not contain control characters such as CR or LF" };
      return { value: items };
    }
    default: {
      if (typeof raw !== "string") return { problem: "must be a string" };
      const value = raw.trim();
      const max = f.multiline ? MAX_MULTILINE : MAX_TEXT;
      if (value.length > max) return { problem: `must be at most ${max} characters` };
      if (badControl(f, value)) return { problem: "must not contain control characters such as CR or LF" };
      if (f.type === "select" && !f.options?.some((o) => o.value === value)) {
        // Options may come from the operator (the sendmail commands): the help says where.
        if (!f.options?.length) return { problem: `'${value}' is not available: ${f.help}` };
        return { problem: `'${value}' is not one of: ${f.options.map((o) => o.value).join(", ")}` };
      }
      if (f.type === "host" && !isHost(value)) return { problem: "must be a host name or IP address, e.g. smtp.example.com" };
      if (f.type === "url" && !isHttpUrl(value)) return { problem: "must be an http:// or https:// URL" };
      if (f.type === "email" && !isEmailAddress(value)) return { problem: "must be an email address, e.g. name@example.com" };
      const problem = f.check?.(value);
      return problem ? { problem } : { value };
    }
  }
}

/** null, absent or blank text: what clears a setting. */
export function isEmptySetting(raw: unknown): boolean {
  return raw === null || raw === undefined || (typeof raw === "string" && raw.trim() === "");
}

/** A field's value when it is not set: its default, or nothing. */
export function defaultValue(f: DriverField): SettingValue | undefined {
  return f.default === null || f.default === undefined ? undefined : (f.default as SettingValue);
}

export interface ParsedSettings {
  settings: Settings;
  /** Secret key -> new plain value, or null to clear. Omitted secrets are not listed. */
  secretChanges: Record<string, string | null>;
  problems: FieldProblem[];
  /** Keys the driver does not have (also listed in problems). */
  unknownKeys: string[];
}

/**
 * Parses a whole settings object for a driver. Non-secret settings that are absent,
 * null or empty take their default; secrets that are absent keep their stored value,
 * null or "" clears them. Read-only and unknown keys are problems.
 */
export function parseSettings(driver: Driver, input: Record<string, unknown>): ParsedSettings {
  const settings: Settings = {};
  const secretChanges: Record<string, string | null> = {};
  const problems: FieldProblem[] = [];
  const known = new Set(driver.fields.map((f) => f.key));
  const unknownKeys = Object.keys(input).filter((key) => !known.has(key));
  for (const key of unknownKeys) {
    problems.push({
      field: `settings.${key}`,
      message: `is not a setting of the ${driver.label} driver; its settings are ${driver.fields
        .filter((f) => !f.readOnly)
        .map((f) => f.key)
        .join(", ")}`,
    });
  }
  // Conditional fields last: their condition (the authentication method) is parsed by then.
  const ordered = [...driver.fields.filter((f) => !f.when), ...driver.fields.filter((f) => f.when)];
  for (const f of ordered) {
    const raw = input[f.key];
    // A field of another authentication method: the form hides it, the server ignores it.
    if (!applies(driver, f, settings)) continue;
    if (f.readOnly) {
      if (raw !== undefined) problems.push({ field: `settings.${f.key}`, message: "is set by Mailroom and cannot be edited" });
      continue;
    }
    if (f.secret) {
      if (raw === undefined) continue;
      if (isEmptySetting(raw)) {
        secretChanges[f.key] = null;
        continue;
      }
      const checked = checkSecret(f, raw);
      if ("problem" in checked) problems.push({ field: `settings.${f.key}`, message: checked.problem });
      else secretChanges[f.key] = checked.value;
      continue;
    }
    if (isEmptySetting(raw)) {
      const fallback = defaultValue(f);
      if (fallback !== undefined) settings[f.key] = fallback;
      continue;
    }
    const checked = checkValue(f, raw);
    if ("problem" in checked) problems.push({ field: `settings.${f.key}`, message: checked.problem });
    else settings[f.key] = checked.value;
  }
  return { settings, secretChanges, problems, unknownKeys };
}

/** Required settings with no value: what makes a server `incomplete`. */
export function missingSettings(driver: Driver, settings: Settings, secretKeys: Iterable<string>): string[] {
  const secrets = new Set(secretKeys);
  return driver.fields
    .filter((f) => f.required && !f.readOnly && applies(driver, f, settings))
    .filter((f) => (f.secret ? !secrets.has(f.key) : settings[f.key] === undefined))
    .map((f) => f.key);
}

/**
 * Where valid settings point that the operator has not allowed: a link-local or metadata
 * address as a host (names are checked when they resolve), and the driver's own endpoints.
 */
export function destinationProblems(driver: Driver, settings: Settings, operator: OperatorPolicy): FieldProblem[] {
  const problems: FieldProblem[] = [];
  for (const f of driver.fields) {
    const host = settings[f.key];
    if (f.type !== "host" || typeof host !== "string" || !isLinkLocalOrMetadata(host)) continue;
    if (isEndpointAllowed(operator, { host, port: Number(settings.port) || 0 })) continue;
    problems.push({
      field: `settings.${f.key}`,
      message: `${host} is a link-local or cloud metadata address: allowed only when the operator lists it in MAILROOM_ALLOWED_ENDPOINTS`,
    });
  }
  return [...problems, ...(driver.checkDestinations?.(settings, operator) ?? [])];
}

/** The fields that say where secrets go (see DriverField.destination) whose value differs. */
export function changedDestinations(driver: Driver, before: Settings, after: Settings): DriverField[] {
  const shown = (settings: Settings, f: DriverField) => JSON.stringify(settings[f.key] ?? defaultValue(f) ?? null);
  return driver.fields.filter((f) => f.destination && shown(before, f) !== shown(after, f));
}

/**
 * Problems of valid settings taken together. App-only credentials can send as any mailbox
 * of the tenant or domain, so such a server names each mailbox it may send as: no *@domain.
 */
export function combinedProblems(driver: Driver, settings: Settings): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const rules = Array.isArray(settings.allowedFromAddresses) ? settings.allowedFromAddresses : [];
  const wildcards = rules.filter((rule) => rule.includes("*"));
  if (appOnlyMethodOf(driver, settings) && wildcards.length) {
    problems.push({
      field: "settings.allowedFromAddresses",
      message: `must list each mailbox exactly with application credentials (they can send as any mailbox of the tenant): replace ${wildcards.join(", ")}`,
    });
  }
  return [...problems, ...(driver.checkSettings?.(settings) ?? [])];
}
