import { useState } from "react";
import { api, type EmailServer, errorMessage, type TestReport } from "../api";
import { Time, timeAgo } from "./ui";

/**
 * A failing server's held mail and its next check, with "Check now" (the probe): shown only
 * while there is something to say.
 */
export function DeliveryState({
  server,
  canCheck,
  onChecked,
}: {
  server: EmailServer;
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
      const result = await api<{ report: TestReport | null; server: EmailServer }>(
        "POST",
        `/api/email-servers/${encodeURIComponent(server.id)}/probe`,
      );
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
  return (
    <div className="delivery-state">
      <p>
        {delivery.state === "open" ? (
          <>
            Mailroom no longer sends through this server: {held} wait. Next check{" "}
            {delivery.probing ? "running now" : <Time value={delivery.nextProbeAt} />}
            {delivery.failedProbes > 0 && ` (${delivery.failedProbes} failed, the last ${timeAgo(delivery.lastProbeAt)})`}
            {delivery.lastProbeError && `: ${delivery.lastProbeError}`}. Fix the settings, or check now once the server is back.
          </>
        ) : (
          `${held}: they go out once the server can send.`
        )}
      </p>
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
