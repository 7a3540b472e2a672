import { useState } from "react";
import { errorCatalogue } from "../../../src/kernel/errors.js";
import { api, type EmailServer, errorMessage, query, type ServerChecked } from "../api";
import { Link } from "../router";
import { Time, timeAgo } from "./ui";

/**
 * A failing server explains itself: since when (a clock time and how long ago), its last
 * error and what to do about it, its held mail (a link to it in the delivery log), the next
 * check and "Check now" (the probe). Shown only while there is something to say.
 */
export function DeliveryState({
  server,
  driverErrors,
  canCheck,
  onChecked,
}: {
  server: EmailServer;
  /** The server's driver's own codes (GET /api/drivers), for their fix. */
  driverErrors: readonly ErrorHint[];
  canCheck: boolean;
  onChecked: (server: EmailServer) => void;
}) {
  const [checking, setChecking] = useState(false);
  const [outcome, setOutcome] = useState<string | null>(null);
  const delivery = server.delivery;
  if (!delivery || (delivery.state === "closed" && delivery.heldMessages === 0 && !outcome)) return null;

  const checkNow = async () => {
    setChecking(true);
    setOutcome(null);
    try {
      const result = await api<ServerChecked>("POST", `/api/email-servers/${encodeURIComponent(server.id)}/probe`);
      setOutcome(
        result.report === null
          ? "A check is already running; its result shows here when it ends."
          : result.report.ok
            ? "The check passed: the server is ready and its held mail is going out."
            : `The check failed: ${result.report.error?.message ?? "see Test for the steps"}`,
      );
      onChecked(result.server);
    } catch (e) {
      setOutcome(errorMessage(e));
    } finally {
      setChecking(false);
    }
  };

  const held = `${delivery.heldMessages} held ${delivery.heldMessages === 1 ? "message" : "messages"}`;
  const heldLink =
    delivery.heldMessages > 0 ? <Link to={`/messages${query({ server: server.id, status: "held" })}`}>{held}</Link> : held;
  const last = lastError(delivery.lastProbeError, server.statusDetail, driverErrors);
  return (
    <div className="delivery-state">
      {delivery.state === "open" ? (
        <div className="delivery-failing">
          <p>
            <strong>
              Failing since {clockTime(delivery.openedAt)}, {timeAgo(delivery.openedAt)}
            </strong>
            : Mailroom no longer sends through this server, and {heldLink} wait for it.
          </p>
          {last && (
            <p>
              Last error: {last.message}
              {last.code && <span className="muted"> ({last.code})</span>}
            </p>
          )}
          {last?.hint && (
            <p className="hint-text">
              <span className="hint-label">What to do: </span>
              {last.hint} Then check now, or wait for the next check{" "}
              {delivery.probing ? "(running now)" : <Time value={delivery.nextProbeAt} />}
              {delivery.failedProbes > 0 &&
                ` (${delivery.failedProbes} ${delivery.failedProbes === 1 ? "check" : "checks"} failed so far)`}
              .
            </p>
          )}
        </div>
      ) : (
        <p>{heldLink}: they go out once the server can send.</p>
      )}
      {canCheck && delivery.state === "open" && (
        <button type="button" className="button" onClick={() => void checkNow()} disabled={checking}>
          {checking ? "Checking…" : "Check now"}
        </button>
      )}
      {outcome && (
        <p className="muted" role="status">
          {outcome}
        </p>
      )}
    </div>
  );
}

/** "14:02" today, "3 Mar, 14:02" before. */
function clockTime(value: string | null): string {
  if (!value) return "—";
  const date = new Date(value);
  const time = date.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
  return date.toDateString() === new Date().toDateString()
    ? time
    : `${date.toLocaleDateString("en-GB", { day: "numeric", month: "short" })}, ${time}`;
}

interface ErrorHint {
  code: string;
  summary: string;
}

/**
 * The failing server's last error, from its last probe ("code: message") or, before any
 * probe, from the fault that opened it ("message (code, time)"); the hint is the shared
 * catalogue's or the driver's own.
 */
export function lastError(
  probeError: string | null,
  statusDetail: string | null,
  driverErrors: readonly ErrorHint[] = [],
): { code: string | null; message: string; hint: string | null } | null {
  const fromProbe = probeError ? /^([a-z0-9_]+): ([\s\S]*)$/.exec(probeError) : null;
  const fromFault = !fromProbe && statusDetail ? /^([\s\S]*) \(([a-z0-9_]+), [^)]*\)$/.exec(statusDetail) : null;
  const code = fromProbe?.[1] ?? fromFault?.[2] ?? null;
  const message = fromProbe?.[2] ?? fromFault?.[1] ?? probeError ?? statusDetail;
  if (!message) return null;
  const entry = code
    ? ((errorCatalogue as Record<string, { summary: string } | undefined>)[code] ?? driverErrors.find((e) => e.code === code))
    : undefined;
  return { code: entry ? code : null, message, hint: entry?.summary ?? null };
}
