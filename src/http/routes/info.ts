import type { FastifyInstance } from "fastify";
import type { Mailroom } from "../../app.js";
import { ref, replies } from "../schemas.js";

/** Where applications reach Mailroom's SMTP submission, or null while it is off. */
export interface SmtpSubmissionInfo {
  host: string;
  /** Plain port with STARTTLS, or null when only implicit TLS listens. */
  port: number | null;
  /** Implicit TLS port, or null. */
  tlsPort: number | null;
  /** The generated certificate: a client cannot verify it without its fingerprint. */
  selfSigned: boolean;
}

/** Where the SMTP listener actually listens: null while it is off, so the UI never shows an example that cannot work. */
function smtpSubmission(mailroom: Mailroom): SmtpSubmissionInfo | null {
  const port = mailroom.smtp.port("smtp") ?? null;
  const tlsPort = mailroom.smtp.port("smtps") ?? null;
  if (port === null && tlsPort === null) return null;
  return {
    host: new URL(mailroom.ctx.config.publicUrl).hostname,
    port,
    tlsPort,
    selfSigned: mailroom.smtp.certificate?.selfSigned ?? false,
  };
}

/** What the admin UI needs to know about this Mailroom to write ready-to-run examples. */
export function infoRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  app.get(
    "/api/info",
    {
      schema: {
        tags: ["auth"],
        summary: "This Mailroom's public URL, its API docs and SMTP submission (null when off), for ready-to-run examples",
        response: replies(200, ref("Info")),
      },
    },
    async () => {
      const { publicUrl } = mailroom.ctx.config;
      return { publicUrl, apiDocsUrl: `${publicUrl}/api/docs`, smtp: smtpSubmission(mailroom) };
    },
  );
}
