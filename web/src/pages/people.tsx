/** What the Users, Groups and API tokens pages share (API tokens have a navigation entry of their own). */
import { type Manageable, PERMISSIONS, type Permission } from "../api";
import { Link } from "../router";

export function PeopleTabs({ current }: { current: "users" | "groups" }) {
  return (
    <nav className="tabs" aria-label="Users and groups">
      <Link to="/users" aria-current={current === "users" ? "page" : undefined}>
        Users
      </Link>
      <Link to="/groups" aria-current={current === "groups" ? "page" : undefined}>
        Groups
      </Link>
    </nav>
  );
}

/**
 * In place of Edit and Delete on a row you may not change: why not. A users.manage holder
 * changes only what holds no permission they lack (the server refuses the rest).
 */
export function NotManageable({ item }: { item: Manageable }) {
  if (item.manageable !== false) return null;
  return <p className="muted not-manageable">{item.notManageableReason}</p>;
}

export function permissionLabel(p: string): string {
  return PERMISSIONS.find((x) => x.key === p)?.label ?? p;
}

export function PermissionChecks({
  idPrefix,
  value,
  onChange,
  legend,
}: {
  idPrefix: string;
  value: Permission[];
  onChange: (next: Permission[]) => void;
  legend: string;
}) {
  return (
    <fieldset className="checks">
      <legend>{legend}</legend>
      {PERMISSIONS.map((p) => (
        <div key={p.key} className="check">
          <input
            type="checkbox"
            id={`${idPrefix}-${p.key}`}
            checked={value.includes(p.key)}
            onChange={(e) => onChange(e.target.checked ? [...value, p.key] : value.filter((x) => x !== p.key))}
            aria-describedby={`${idPrefix}-${p.key}-allows`}
          />
          <div>
            <label htmlFor={`${idPrefix}-${p.key}`}>
              {p.label} <span className="muted">({p.key})</span>
            </label>
            <p className="help check-help" id={`${idPrefix}-${p.key}-allows`}>
              {p.allows}
            </p>
          </div>
        </div>
      ))}
    </fieldset>
  );
}

export function Field({
  id,
  label,
  value,
  onChange,
  type = "text",
  error,
  help,
  required,
}: {
  id: string;
  label: string;
  value: string;
  onChange: (v: string) => void;
  type?: string;
  error?: string;
  help?: string;
  required?: boolean;
}) {
  const describedBy = [help && `${id}-help`, error && `${id}-error`].filter(Boolean).join(" ") || undefined;
  return (
    <div className="field">
      <label htmlFor={id}>
        {label}
        {required && <span className="visually-hidden"> (required)</span>}
      </label>
      {help && (
        <p className="help" id={`${id}-help`}>
          {help}
        </p>
      )}
      <input
        id={id}
        type={type}
        value={value}
        onChange={(e) => onChange(e.target.value)}
        aria-invalid={error ? true : undefined}
        aria-describedby={describedBy}
        autoComplete={type === "password" ? "new-password" : "off"}
      />
      {error && (
        <p className="field-error" id={`${id}-error`}>
          {error}
        </p>
      )}
    </div>
  );
}
