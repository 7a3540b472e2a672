import type { FastifyInstance } from "fastify";
import { type BootstrapResult, bootstrap, createMailroom, type Mailroom } from "../app.js";
import type { Config } from "../config.js";
import { buildServer } from "../http/server.js";
import { startOAuthHealthCheck } from "../oauth/health.js";
import { markRunning } from "../storage/running-marker.js";

export interface RunningMailroom {
  mailroom: Mailroom;
  app: FastifyInstance;
  url: string;
  boot: BootstrapResult;
  stop(): Promise<void>;
}

/** Starts everything: database, first-start work, HTTP, SMTP submission. Used by `mailroom serve` and by tests. */
export async function startMailroom(config: Config): Promise<RunningMailroom> {
  const mailroom = createMailroom(config);
  const boot = await bootstrap(mailroom);
  const app = await buildServer(mailroom);
  await app.listen({ port: config.port, host: config.host });
  try {
    await mailroom.smtp.start();
  } catch (error) {
    await app.close();
    await mailroom.close();
    throw error;
  }
  // Tells `mailroom restore` that this data folder is in use.
  const unmarkRunning = markRunning(config.dataDir);
  if (config.delivery.enabled) {
    mailroom.worker.start();
    mailroom.webhooks.dispatcher.start();
    mailroom.queueSignal.listen(() => mailroom.worker.wake());
    // Background work goes with delivery: processes that only accept mail leave it to the workers.
    mailroom.retention.start();
    mailroom.alerts.start();
  }
  // Daily: a quiet OAuth server learns of a revoked grant before its next message, and
  // Microsoft's 90-day inactivity window never closes.
  const stopHealthCheck = config.delivery.enabled ? startOAuthHealthCheck(mailroom) : async () => {};
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  let stopping: Promise<void> | undefined;
  return {
    mailroom,
    app,
    url,
    boot,
    stop: () => {
      stopping ??= (async () => {
        // Both doors close together; sessions and requests under way finish first.
        await Promise.all([app.close(), mailroom.smtp.stop()]);
        await stopHealthCheck();
        await mailroom.close();
        unmarkRunning();
      })();
      return stopping;
    },
  };
}

export function welcomeText(running: RunningMailroom): string {
  const lines = [`Mailroom is running at ${running.mailroom.ctx.config.publicUrl} (listening on ${running.url}).`];
  const { admin, createdCaptureServer } = running.boot;
  if (admin) {
    lines.push("", "First start: a super admin was created.", `  Email:    ${admin.email}`);
    lines.push(
      admin.generatedPassword
        ? `  Password: ${admin.generatedPassword}   (shown once: sign in and change it, or run 'mailroom user reset-password ${admin.email}')`
        : "  Password: the one in MAILROOM_ADMIN_PASSWORD",
    );
  }
  if (createdCaptureServer) {
    lines.push("", "A 'Capture' email server is the default: it keeps mail in Mailroom instead of sending it.");
  }
  lines.push("", `API docs: ${running.mailroom.ctx.config.publicUrl}/api/docs`);
  const { smtp } = running.mailroom;
  const cert = smtp.certificate;
  const listening = [
    smtp.port("smtp") !== undefined ? `port ${smtp.port("smtp")} (STARTTLS)` : "",
    smtp.port("smtps") !== undefined ? `port ${smtp.port("smtps")} (TLS)` : "",
  ].filter(Boolean);
  if (listening.length && cert) {
    lines.push(
      "",
      `SMTP submission on ${listening.join(" and ")}: log in with any username and an API token (messages.send) as the password.`,
      `  TLS certificate: ${cert.selfSigned ? "self-signed, " : ""}${cert.certFile}`,
      `  SHA-256 fingerprint: ${cert.fingerprint}`,
    );
  }
  return lines.join("\n");
}
