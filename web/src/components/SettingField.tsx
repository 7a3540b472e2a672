/**
 * One driver setting, drawn from its field description: label, required mark, help, default,
 * the control for its type, Copy and Clear. Secrets are write-only: the page only ever knows
 * whether one is set, and a new value lives in an uncontrolled input (never in an attribute).
 */
import type { ReactNode } from "react";
import type { DriverField, SettingValue } from "../api";
import { defaultFormValue, type FormValue, type SecretAction } from "../serverForm";
import { CopyButton } from "./ui";

function describe(field: DriverField): string | null {
  if (field.secret || field.readOnly) return null;
  const d = field.default;
  if (d === null || d === undefined || (Array.isArray(d) && d.length === 0)) return null;
  if (field.type === "boolean") return `Default: ${d ? "on" : "off"}.`;
  if (field.type === "select") return `Default: ${field.options?.find((o) => o.value === d)?.label ?? String(d)}.`;
  return `Default: ${Array.isArray(d) ? d.join(", ") : String(d)}.`;
}

/** The text a value shows as (read-only views, Copy). */
export function displayValue(field: DriverField, value: FormValue | SettingValue | null | undefined): string {
  if (value === null || value === undefined || value === "") return "";
  if (field.type === "boolean") return value === true ? "On" : "Off";
  if (field.type === "select") return field.options?.find((o) => o.value === value)?.label ?? String(value);
  if (Array.isArray(value)) return value.join("\n");
  return String(value);
}

interface Common {
  field: DriverField;
  error?: string;
}

function Label({ field, htmlFor, id }: { field: DriverField; htmlFor?: string; id?: string }) {
  const content = (
    <>
      {field.label}
      {field.required && !field.readOnly && (
        <span className="required">
          <span aria-hidden="true"> *</span>
          <span className="visually-hidden"> (required)</span>
        </span>
      )}
    </>
  );
  return htmlFor ? (
    <label htmlFor={htmlFor} className="setting-label">
      {content}
    </label>
  ) : (
    <span id={id} className="setting-label">
      {content}
    </span>
  );
}

function HelpAndError({ field, error }: Common) {
  const extra = describe(field);
  return (
    <>
      {(field.help || extra) && (
        <p className="help" id={`help-${field.key}`}>
          {field.help} {extra}
        </p>
      )}
      {error && (
        <p className="field-error" id={`error-${field.key}`}>
          {error}
        </p>
      )}
    </>
  );
}

function describedBy(field: DriverField, error?: string): string | undefined {
  const ids = [(field.help || describe(field)) && `help-${field.key}`, error && `error-${field.key}`].filter(Boolean);
  return ids.length ? ids.join(" ") : undefined;
}

/** A setting the signed-in user may only look at, or one Mailroom sets (redirect URI, grant facts). */
export function SettingView({ field, value }: { field: DriverField; value: FormValue | SettingValue | null | undefined }) {
  const text = displayValue(field, value);
  return (
    <div className="setting" data-setting={field.key}>
      <Label field={field} id={`label-${field.key}`} />
      <div className="setting-row">
        <div className="setting-value">
          {text ? <span className="value-text">{text}</span> : <span className="muted">Not set</span>}
        </div>
        <div className="setting-actions">{text && <CopyButton text={text} label={`Copy ${field.label}`} />}</div>
      </div>
      <HelpAndError field={field} />
    </div>
  );
}

export function SecretView({ field, set }: { field: DriverField; set: boolean }) {
  return (
    <div className="setting" data-setting={field.key}>
      <Label field={field} id={`label-${field.key}`} />
      <div className="setting-row">
        <div className="setting-value">
          <SecretState set={set} />
        </div>
      </div>
      <HelpAndError field={field} />
    </div>
  );
}

function SecretState({ set, pending }: { set: boolean; pending?: string }) {
  return (
    <span className={`secret-state ${set ? "is-set" : "not-set"}`}>
      {set ? "Set" : "Not set"}
      {pending && <span className="muted"> · {pending}</span>}
    </span>
  );
}

export function SettingInput({
  field,
  value,
  onChange,
  error,
}: Common & { value: FormValue; onChange: (value: FormValue) => void }) {
  const id = `setting-${field.key}`;
  const common = {
    id,
    "aria-describedby": describedBy(field, error),
    "aria-invalid": error ? true : undefined,
  } as const;
  let control: ReactNode;
  switch (field.type) {
    case "boolean":
      control = (
        <input
          {...common}
          type="checkbox"
          checked={value === true}
          onChange={(e) => onChange(e.target.checked)}
          className="checkbox"
        />
      );
      break;
    case "select":
      control = (
        <select {...common} value={String(value)} onChange={(e) => onChange(e.target.value)} required={field.required}>
          {!field.required && <option value="">—</option>}
          {field.options?.map((o) => (
            <option key={o.value} value={o.value}>
              {o.label}
            </option>
          ))}
        </select>
      );
      break;
    case "integer":
      control = (
        <input
          {...common}
          type="number"
          inputMode="numeric"
          min={field.min}
          max={field.max}
          step={1}
          value={String(value)}
          placeholder={field.placeholder}
          onChange={(e) => onChange(e.target.value)}
        />
      );
      break;
    case "text":
    case "list":
      if (field.type === "text" && !field.multiline) {
        control = (
          <input
            {...common}
            type="text"
            value={String(value)}
            placeholder={field.placeholder}
            spellCheck={false}
            autoComplete="off"
            onChange={(e) => onChange(e.target.value)}
          />
        );
        break;
      }
      control = (
        <textarea
          {...common}
          rows={field.multiline ? 6 : 3}
          value={String(value)}
          placeholder={field.placeholder ?? "One per line"}
          onChange={(e) => onChange(e.target.value)}
        />
      );
      break;
    default:
      control = (
        <input
          {...common}
          type={field.type === "email" ? "email" : field.type === "url" ? "url" : "text"}
          value={String(value)}
          placeholder={field.placeholder}
          spellCheck={false}
          autoComplete="off"
          onChange={(e) => onChange(e.target.value)}
        />
      );
  }
  const fallback = defaultFormValue(field);
  const text = displayValue(field, value);
  return (
    <div className={`setting${field.type === "boolean" ? " setting-boolean" : ""}`} data-setting={field.key}>
      <Label field={field} htmlFor={id} />
      <div className="setting-row">
        <div className="setting-control">{control}</div>
        <div className="setting-actions">
          {field.type !== "boolean" && <CopyButton text={text} label={`Copy ${field.label}`} />}
          <button
            type="button"
            className="button small"
            onClick={() => onChange(fallback)}
            disabled={value === fallback}
            aria-label={`Clear ${field.label}${fallback !== "" && fallback !== false ? " (back to its default)" : ""}`}
          >
            Clear
          </button>
        </div>
      </div>
      <HelpAndError field={field} error={error} />
    </div>
  );
}

export function SecretInput({
  field,
  storedSet,
  reentry,
  action,
  onAction,
  onValue,
  error,
}: Common & {
  /** Set now (saved, same driver). */
  storedSet: boolean;
  /** Why the saved value cannot be kept ("Host changed"): it must be typed again. */
  reentry?: string | null;
  action: SecretAction;
  onAction: (action: SecretAction) => void;
  onValue: (value: string) => void;
}) {
  const id = `setting-${field.key}`;
  const pending = reentry
    ? "enter it again below"
    : action === "clear"
      ? "will be cleared when you save"
      : action === "replace"
        ? "new value below"
        : undefined;
  const noteId = `reentry-${field.key}`;
  // Nothing stored yet (a new server, say): type it at once, no "Enter" first.
  const direct = !storedSet && !reentry && action !== "clear";
  const input = action === "replace" || direct;
  return (
    <div className="setting" data-setting={field.key}>
      {input ? <Label field={field} htmlFor={id} /> : <Label field={field} id={`label-${field.key}`} />}
      <div className="setting-row">
        <div className="setting-control">
          <SecretState set={storedSet} pending={direct ? undefined : pending} />
          {input &&
            (field.multiline ? (
              // A pasted PEM key or JSON key file: its line breaks are part of it.
              <textarea
                id={id}
                rows={6}
                autoComplete="off"
                spellCheck={false}
                className="secret-input"
                placeholder={field.placeholder}
                required={Boolean(reentry)}
                aria-describedby={[reentry && noteId, describedBy(field, error)].filter(Boolean).join(" ") || undefined}
                aria-invalid={error ? true : undefined}
                onChange={(e) => {
                  onValue(e.target.value);
                  const wanted = e.target.value === "" ? "keep" : "replace";
                  if (direct && wanted !== action) onAction(wanted);
                }}
                // biome-ignore lint/a11y/noAutofocus: the admin just asked to paste a new value
                autoFocus={!reentry && !direct}
              />
            ) : (
              <input
                id={id}
                type="password"
                autoComplete="new-password"
                spellCheck={false}
                className="secret-input"
                required={Boolean(reentry)}
                aria-describedby={[reentry && noteId, describedBy(field, error)].filter(Boolean).join(" ") || undefined}
                aria-invalid={error ? true : undefined}
                onChange={(e) => {
                  onValue(e.target.value);
                  // Typed into from the start: a value is a replacement, an emptied input leaves it unset.
                  const wanted = e.target.value === "" ? "keep" : "replace";
                  if (direct && wanted !== action) onAction(wanted);
                }}
                // biome-ignore lint/a11y/noAutofocus: the admin just asked to type a new value
                autoFocus={!reentry && !direct}
              />
            ))}
          {reentry && (
            <p className="help reentry-note" id={noteId}>
              {reentry}, so enter {field.label} again: Mailroom sends a saved secret only to the destination it was saved for.
            </p>
          )}
        </div>
        <div className="setting-actions">
          {reentry || direct ? null : action === "keep" ? (
            <>
              <button
                type="button"
                className="button small"
                onClick={() => onAction("replace")}
                aria-label={`${storedSet ? "Replace" : "Enter"} ${field.label}`}
              >
                {storedSet ? "Replace" : "Enter"}
              </button>
              {storedSet && (
                <button
                  type="button"
                  className="button small"
                  onClick={() => onAction("clear")}
                  aria-label={`Clear ${field.label}`}
                >
                  Clear
                </button>
              )}
            </>
          ) : (
            <button
              type="button"
              className="button small"
              onClick={() => {
                onValue("");
                onAction("keep");
              }}
              aria-label={action === "clear" ? `Keep ${field.label}` : `Cancel new ${field.label}`}
            >
              {action === "clear" ? "Keep" : "Cancel"}
            </button>
          )}
        </div>
      </div>
      <HelpAndError field={field} error={error} />
    </div>
  );
}
