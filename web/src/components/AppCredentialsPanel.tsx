/**
 * Gmail / Microsoft 365 (SMTP or their HTTP API drivers) with the application's own credentials
 * (no person authorizes): the steps at the provider for the chosen method, and that method's fields.
 */
import type { ReactNode } from "react";
import type { Driver, DriverField } from "../api";

const KEYS: Record<string, string[]> = {
  client_secret: ["tenant", "clientId", "clientSecret"],
  certificate: ["tenant", "clientId", "certificate", "privateKey", "certificateThumbprint"],
  service_account: ["serviceAccountKey"],
};

/** The HTTP API drivers need an API permission instead of SMTP's, and no Exchange registration. */
function Steps({ method, scope, api }: { method: string; scope: string; api: boolean }) {
  if (method === "service_account") {
    return (
      <ol className="oauth-steps muted guide">
        <li>
          In the Google Cloud console (IAM &amp; Admin → Service accounts), create a service account and, under Keys, add a JSON
          key.
        </li>
        <li>
          In the Google Admin console (Security → Access and data control → API controls → Domain-wide delegation), add the
          service account’s client ID with exactly the scope <code>{scope}</code>.
        </li>
        {api && <li>In the service account’s Google Cloud project, enable the Gmail API (APIs &amp; Services → Library).</li>}
        <li>Paste the JSON key below. The from address (and each other allowed from address) must be a user of your domain.</li>
      </ol>
    );
  }
  return (
    <ol className="oauth-steps muted guide">
      <li>
        In Microsoft Entra (App registrations), register an app for your organisation only; copy its Application (client) ID and
        Directory (tenant) ID.
      </li>
      <li>
        {method === "certificate"
          ? "Under Certificates & secrets → Certificates, upload the certificate (.cer or .pem) whose key you paste below."
          : "Under Certificates & secrets → Client secrets, create a secret and copy its Value (not its Secret ID)."}
      </li>
      {api ? (
        <>
          <li>
            Under API permissions, add the application permission <strong>Mail.Send</strong> of Microsoft Graph and grant admin
            consent (the token’s scope is <code>{scope}</code>).
          </li>
          <li>
            Mail.Send reaches every mailbox of the tenant: limit the app to the mailboxes it sends as with RBAC for Applications
            or an application access policy (Exchange Online PowerShell).
          </li>
        </>
      ) : (
        <>
          <li>
            Under API permissions, add the application permission <strong>SMTP.SendAsApp</strong> of Office 365 Exchange Online
            and grant admin consent (the token’s scope is <code>{scope}</code>).
          </li>
          <li>
            In Exchange Online PowerShell, register the app’s service principal (<code>New-ServicePrincipal</code>) and give it
            FullAccess to each mailbox it sends as (<code>Add-MailboxPermission</code>), and to no other: that is what limits the
            app to those mailboxes.
          </li>
        </>
      )}
    </ol>
  );
}

export function AppCredentialsPanel({
  driver,
  method,
  renderField,
}: {
  driver: Driver;
  method: string;
  renderField: (field: DriverField) => ReactNode;
}) {
  const fields = (KEYS[method] ?? [])
    .map((key) => driver.fields.find((f) => f.key === key))
    .filter((f): f is DriverField => f !== undefined);
  return (
    <section className="panel oauth" aria-labelledby="app-credentials-heading">
      <h2 id="app-credentials-heading">Application credentials</h2>
      <p className="muted">
        Mailroom gets its own tokens: nobody signs in, and nothing stops when a person leaves. It sends only as the from address
        and the other allowed from addresses, each listed exactly. The whole setup: <code>docs/oauth.md</code>, section “App-only
        credentials”.
      </p>
      <Steps
        method={method}
        scope={driver.appOnly?.scope ?? ""}
        api={driver.id === "microsoft-graph" || driver.id === "gmail-api"}
      />
      <div className="settings">{fields.map(renderField)}</div>
      <p className="muted">“Check connection” in Test this server asks for a token and says what the provider refused.</p>
    </section>
  );
}
