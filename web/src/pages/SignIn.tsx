import { type FormEvent, useState } from "react";
import { ApiError, api, type User } from "../api";
import { Alert, PageTitle } from "../components/ui";

export function SignInPage({ notice, onSignedIn }: { notice: string | null; onSignedIn: (user: User, csrf: string) => void }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const result = await api<{ user: User; csrfToken: string }>("POST", "/api/auth/login", { email, password });
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
            those. After signing in, change the password under your name in the top bar.
          </p>
          <p>
            Lost it? On the server run <code>mailroom user reset-password &lt;email&gt;</code>.
          </p>
        </details>
      </div>
    </main>
  );
}
