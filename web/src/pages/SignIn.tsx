import { type FormEvent, useState } from "react";
import { ApiError, api, type SignedIn, setCsrfToken, type User } from "../api";
import { Alert, PageTitle } from "../components/ui";
import { NewPasswordFields, newPasswordProblems } from "./Account";

export function SignInPage({ notice, onSignedIn }: { notice: string | null; onSignedIn: (user: User, csrf: string) => void }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  /** The one-time password just used, while its owner chooses their own. */
  const [oneTime, setOneTime] = useState<string | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const result = await api<SignedIn>("POST", "/api/auth/login", { email, password });
      if (result.mustChangePassword) {
        setCsrfToken(result.csrfToken);
        setOneTime(password);
        setPassword("");
        return;
      }
      onSignedIn(result.user, result.csrfToken);
    } catch (e) {
      setError(
        e instanceof ApiError && e.code === "invalid_credentials"
          ? "That email and password do not match an active account. Check both and try again."
          : e instanceof Error
            ? e.message
            : String(e),
      );
    } finally {
      setBusy(false);
    }
  };

  if (oneTime !== null) {
    return (
      <main id="main" className="signin">
        <div className="signin-card">
          <p className="brand brand-large" aria-hidden="true">
            Mailroom
          </p>
          <ChooseOwnPassword email={email} oneTimePassword={oneTime} onSignedIn={onSignedIn} />
        </div>
      </main>
    );
  }

  return (
    <main id="main" className="signin">
      <div className="signin-card">
        <p className="brand brand-large" aria-hidden="true">
          Mailroom
        </p>
        <PageTitle>Sign in</PageTitle>
        {/* Once a sign-in fails, its error is the news: an older notice above it would mislead. */}
        {notice && !error && <Alert kind="info">{notice}</Alert>}
        {error && <Alert kind="error">{error}</Alert>}
        <form onSubmit={submit} className="stack">
          <div className="field">
            <label htmlFor="signin-email">Email</label>
            <input
              id="signin-email"
              type="email"
              autoComplete="username"
              required
              value={email}
              onChange={(e) => setEmail(e.target.value)}
            />
          </div>
          <div className="field">
            <label htmlFor="signin-password">Password</label>
            <input
              id="signin-password"
              type="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          </div>
          <button type="submit" className="button primary" disabled={busy}>
            {busy ? "Signing in…" : "Sign in"}
          </button>
        </form>
        <details className="hint">
          <summary>First start?</summary>
          <p>
            When Mailroom starts with no users it creates a super admin and prints the email and a one-time password in its output
            (look for “First start”). If <code>MAILROOM_ADMIN_EMAIL</code> and <code>MAILROOM_ADMIN_PASSWORD</code> were set, use
            those. A one-time password asks for your own right after signing in.
          </p>
          <p>
            Lost it? On the server run <code>mailroom user reset-password &lt;email&gt;</code>.
          </p>
        </details>
      </div>
    </main>
  );
}

/**
 * After signing in with a password someone else set (a manager, the first start, the CLI):
 * the server allows nothing else until its owner chooses their own, then signs in with it.
 */
function ChooseOwnPassword({
  email,
  oneTimePassword,
  onSignedIn,
}: {
  email: string;
  oneTimePassword: string;
  onSignedIn: (user: User, csrf: string) => void;
}) {
  const [next, setNext] = useState("");
  const [repeat, setRepeat] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const problems = newPasswordProblems(next, repeat, oneTimePassword);
    setErrors(problems);
    setError(null);
    if (Object.keys(problems).length) return;
    setBusy(true);
    try {
      // Changing it ends every session, this one too: sign in again with the new password.
      await api("POST", "/api/auth/password", { currentPassword: oneTimePassword, newPassword: next });
      const result = await api<SignedIn>("POST", "/api/auth/login", { email, password: next });
      onSignedIn(result.user, result.csrfToken);
    } catch (e) {
      if (e instanceof ApiError && Object.keys(e.fields).length) setErrors(e.fields);
      else setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <PageTitle>Choose your password</PageTitle>
      <Alert kind="info">The password you signed in with was set for you and works only once. Choose your own to continue.</Alert>
      {error && <Alert kind="error">{error}</Alert>}
      <form onSubmit={submit} className="stack" noValidate>
        <input type="email" autoComplete="username" value={email} readOnly hidden />
        <NewPasswordFields next={next} setNext={setNext} repeat={repeat} setRepeat={setRepeat} errors={errors} />
        <button type="submit" className="button primary" disabled={busy}>
          {busy ? "Saving…" : "Save and continue"}
        </button>
      </form>
    </>
  );
}
