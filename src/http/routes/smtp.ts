import type { FastifyInstance } from "fastify";
import type { Mailroom } from "../../app.js";
import { ref, replies } from "../schemas.js";

/** What an application needs to send over SMTP: where, how secured, how big. Never a secret. */
export interface SmtpSubmissionView {
  enabled: boolean;
  /** The name clients connect to (from MAILROOM_PUBLIC_URL). */
  host: string;
  /** STARTTLS port and implicit TLS port; null when off. */
  port: number | null;
  tlsPort: number | null;
  maxSize: number;
  maxRecipients: number;
  /** SHA-256 of the certificate, for clients that pin a self-signed one. */
  fingerprint: string | null;
  selfSigned: boolean;
}

export function smtpRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  app.get(
    "/api/smtp-submission",
    {
      schema: {
        tags: ["messages"],
        summary: "The settings an application uses to send over SMTP submission",
        response: replies(200, ref("SmtpSubmission")),
      },
    },
    async (): Promise<SmtpSubmissionView> => {
      const { smtp } = mailroom;
      const { config } = mailroom.ctx;
      const cert = smtp.certificate;
      const port = smtp.port("smtp") ?? null;
      const tlsPort = smtp.port("smtps") ?? null;
      return {
        enabled: port !== null || tlsPort !== null,
        host: new URL(config.publicUrl).hostname,
        port,
        tlsPort,
        maxSize: config.smtp.maxSize,
        maxRecipients: config.smtp.maxRecipients,
        fingerprint: cert?.fingerprint ?? null,
        selfSigned: cert?.selfSigned ?? false,
      };
    },
  );
}
