import { randomUUID } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import {
  type CheckResult,
  DeliveryError,
  type SendResult,
  type Transport,
  type TransportContext,
} from "../../kernel/transport.js";
import { CheckSteps, HttpTranscript } from "../../transport/http.js";
import { buildMime } from "../../transport/mime.js";
import { captureFolder, storeCaptured } from "./store.js";

const DEFAULT_RETENTION = 1000;

/** Keeps each message as a file instead of sending it; the oldest go beyond `retention`. */
export function createCaptureTransport(ctx: TransportContext): Transport {
  const retention =
    typeof ctx.settings.retention === "number" && ctx.settings.retention >= 1 ? ctx.settings.retention : DEFAULT_RETENTION;

  return {
    async send(message): Promise<SendResult> {
      const mime = await buildMime(message);
      let id: string;
      try {
        id = await storeCaptured(ctx.dataDir, ctx.serverId, message.id, mime, retention);
      } catch (err) {
        // A full disk or a read-only folder is this server's problem, not the message's.
        const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        throw new DeliveryError("internal_error", "server", `Capture could not store the message in its folder (${reason})`);
      }
      return { providerMessageId: id, response: `captured as ${id}` };
    },

    async check(probe): Promise<CheckResult> {
      const checks = new CheckSteps(new HttpTranscript([]), probe.onStep);
      await checks.run("folder", async () => {
        const folder = captureFolder(ctx.dataDir, ctx.serverId);
        try {
          await fs.mkdir(folder, { recursive: true, mode: 0o700 });
          const probe = path.join(folder, `.tmp-check-${randomUUID()}`);
          await fs.writeFile(probe, "", { mode: 0o600 });
          await fs.rm(probe, { force: true });
        } catch (err) {
          const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
          throw new DeliveryError("internal_error", "server", `The capture folder ${folder} is not writable (${reason})`);
        }
        checks.transcript.note(`folder ${folder} is writable`);
        return `Messages are kept in ${folder} (the newest ${retention})`;
      });
      return checks.result();
    },

    async close(): Promise<void> {},
  };
}
