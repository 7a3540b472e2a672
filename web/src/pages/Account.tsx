import { type FormEvent, useState } from "react";
import { ApiError, api } from "../api";
import { Alert, PageTitle } from "../components/ui";
import { useSession } from "../session";

export const MIN_LENGTH = 12;

export function AccountPage({ onPasswordChanged }: { onPasswordChanged: () => void }) {
  const { user } = useSession();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [repeat, setRepeat] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const problems = newPasswordProblems(next, repeat);
    setErrors(problems);
    setError(null);
    if (Object.keys(problems).length) return;
    setBusy(true);
    try {
      await api("POST", "/api/auth/password", { currentPassword: current, newPassword: next });
      onPasswordChanged();
    } catch (e) {
      if (e instanceof ApiError && e.code === "invalid_credentials") setErrors({ currentPassword: e.message });
      else if (e instanceof ApiError && Object.keys(e.fields).length) setErrors(e.fields);
      else setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="narrow">
      <PageTitle>Your account</PageTitle>
      <dl className="facts">
        <dt>Email</dt>
        <dd>{user.email}</dd>
        <dt>Name</dt>
        <dd>{user.name || "—"}</dd>
        <dt>Access</dt>
        <dd>{user.superAdmin ? "Super admin: every permission" : user.permissions.join(", ") || "No permissions yet"}</dd>
      </dl>
      <h2>Change your password</h2>
      <p className="muted">
        If you signed in with the one-time password printed at the first start, choose your own now. Changing it signs you out
        everywhere.
      </p>
      {error && <Alert kind="error">{error}</Alert>}
      <form onSubmit={submit} className="stack" noValidate>
        <PasswordField
          id="current"
          label="Current password"
          value={current}
          onChange={setCurrent}
          error={errors.currentPassword}
          autoComplete="current-password"
        />
        <NewPasswordFields next={next} setNext={setNext} repeat={repeat} setRepeat={setRepeat} errors={errors} />
        <div>
          <button type="submit" className="button primary" disabled={busy}>
            {busy ? "Changing…" : "Change password"}
          </button>
        </div>
      </form>
    </section>
  );
}

/** What is wrong with a new password and its repetition, by field; empty when nothing is. */
export function newPasswordProblems(next: string, repeat: string, oneTimePassword?: string): Record<string, string> {
  const problems: Record<string, string> = {};
  if (next.length < MIN_LENGTH) problems.newPassword = `Use at least ${MIN_LENGTH} characters.`;
  else if (oneTimePassword !== undefined && next === oneTimePassword)
    problems.newPassword = "Choose a password other than the one-time one.";
  if (next !== repeat) problems.repeat = "The two new passwords differ.";
  return problems;
}

/** A new password typed twice: the account page and the first sign-in with a one-time password. */
export function NewPasswordFields(props: {
  next: string;
  setNext: (v: string) => void;
  repeat: string;
  setRepeat: (v: string) => void;
  errors: Record<string, string>;
}) {
  return (
    <>
      <PasswordField
        id="new"
        label="New password"
        value={props.next}
        onChange={props.setNext}
        error={props.errors.newPassword}
        autoComplete="new-password"
        help={`At least ${MIN_LENGTH} characters.`}
      />
      <PasswordField
        id="repeat"
        label="New password again"
        value={props.repeat}
        onChange={props.setRepeat}
        error={props.errors.repeat}
        autoComplete="new-password"
      />
    </>
  );
}

export function PasswordField(props: {
  id: string;
  label: string;
  value: string;
  onChange: (v: string) => void;
  error?: string;
  help?: string;
  autoComplete: string;
}) {
  const describedBy =
    [props.help && `${props.id}-help`, props.error && `${props.id}-error`].filter(Boolean).join(" ") || undefined;
  return (
    <div className="field">
      <label htmlFor={`pw-${props.id}`}>{props.label}</label>
      {props.help && (
        <p className="help" id={`${props.id}-help`}>
          {props.help}
        </p>
      )}
      <input
        id={`pw-${props.id}`}
        type="password"
        autoComplete={props.autoComplete}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
        aria-invalid={props.error ? true : undefined}
        aria-describedby={describedBy}
      />
      {props.error && (
        <p className="field-error" id={`${props.id}-error`}>
          {props.error}
        </p>
      )}
    </div>
  );
}
