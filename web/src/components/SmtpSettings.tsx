/** The settings an app that speaks only SMTP needs to send with a token (shown beside a new token). */
import { api, type SmtpSubmission } from "../api";
import { formatBytes, useLoad } from "./ui";

export function SmtpSettings({ tokenName }: { tokenName: string }) {
  const { data } = useLoad(() => api<SmtpSubmission>("GET", "/api/smtp-submission"), []);
  if (!data?.enabled) return null;
  const port = data.port ?? data.tlsPort;
  const security = data.port ? "STARTTLS" : "SSL/TLS";
  return (
    <div className="smtp-settings">
      <p>
        Apps that only speak SMTP (printers, CI, legacy apps) use it as the password of an SMTP login; the token needs the
        messages.send permission:
      </p>
      <dl className="facts">
        <dt>Host</dt>
        <dd>
          <code>{data.host}</code>
        </dd>
        <dt>Port</dt>
        <dd>
          {data.port && <code>{data.port}</code>} {data.port && "(STARTTLS)"}
          {data.port && data.tlsPort && " or "}
          {data.tlsPort && <code>{data.tlsPort}</code>} {data.tlsPort && "(SSL/TLS)"}
        </dd>
        <dt>Username</dt>
        <dd>anything, e.g. the app's name (it is recorded with each message)</dd>
        <dt>Password</dt>
        <dd>the token “{tokenName}”</dd>
        <dt>Largest message</dt>
        <dd>{formatBytes(data.maxSize)}</dd>
        {data.selfSigned && data.fingerprint && (
          <>
            <dt>Certificate</dt>
            <dd className="break">
              self-signed, SHA-256 <code>{data.fingerprint}</code>
            </dd>
          </>
        )}
      </dl>
      <p className="muted">
        For example:{" "}
        <code>
          swaks --server {data.host}:{port} {security === "STARTTLS" ? "--tls" : "--tlsc"} --auth PLAIN --auth-user app
          --auth-password &lt;token&gt; --from you@example.com --to someone@example.com
        </code>
      </p>
    </div>
  );
}
