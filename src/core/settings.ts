import type { Driver, DriverField } from "../drivers/types.js";
import type { FieldProblem } from "../kernel/errors.js";
import type { OperatorPolicy } from "../kernel/operator-policy.js";
import type { Settings, SettingValue } from "../kernel/settings.js";
import { hasControlCharacters, isEmailAddress, isHost, isHttpUrl } from "../kernel/validate.js";
import { isEndpointAllowed, isLinkLocalOrMetadata } from "../transport/operator.js";

const MAX_TEXT = 2000;

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
      if (value.length > MAX_TEXT) return { problem: `must be at most ${MAX_TEXT} characters` };
      if (hasControlCharacters(value)) return { problem: "must not contain control characters such as CR or LF" };
      if (f.type === "select" && !f.options?.some((o) => o.value === value)) {
        // Options may come from the operator (the sendmail commands): the help says where.
        if (!f.options?.length) return { problem: `'${value}' is not available: ${f.help}` };
        return { problem: `'${value}' is not one of: ${f.options.map((o) => o.value).join(", ")}` };
      }
      if (f.type === "host" && !isHost(value)) return { problem: "must be a host name or IP address, e.g. smtp.example.com" };
      if (f.type === "url" && !isHttpUrl(value)) return { problem: "must be an http:// or https:// URL" };
      if (f.type === "email" && !isEmailAddress(value)) return { problem: "must be an email address, e.g. name@example.com" };
      return { value };
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
  for (const f of driver.fields) {
    const raw = input[f.key];
    if (f.readOnly) {
      if (raw !== undefined) problems.push({ field: `settings.${f.key}`, message: "is set by Mailroom and cannot be edited" });
      continue;
    }
    if (f.secret) {
      if (raw === undefined) continue;
      if (isEmptySetting(raw)) secretChanges[f.key] = null;
      else if (typeof raw !== "string") problems.push({ field: `settings.${f.key}`, message: "must be a string" });
      else if (raw.length > MAX_TEXT)
        problems.push({ field: `settings.${f.key}`, message: `must be at most ${MAX_TEXT} characters` });
      else if (hasControlCharacters(raw))
        problems.push({ field: `settings.${f.key}`, message: "must not contain control characters" });
      else secretChanges[f.key] = raw;
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
    .filter((f) => f.required && !f.readOnly)
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
