import { type FormEvent, useEffect, useState } from "react";
import { type AlertSettings, type AlertThresholds, ApiError, api, errorMessage } from "../../api";
import { type Notice, NoticeAlert, useLoad } from "../../components/ui";
import { Field } from "../people";

type Key = Exclude<keyof AlertThresholds, "clientSecretWarnDays">;

const FIELDS: { key: Key; label: string; help: string; off: boolean }[] = [
  {
    key: "heldMessages",
    label: "Held messages",
    help: "Alert when at least this many messages are held. Empty: off.",
    off: true,
  },
  {
    key: "queueAgeMinutes",
    label: "Oldest queued message, minutes",
    help: "Alert when a message has waited this long. Empty: off.",
    off: true,
  },
  {
    key: "failureRatePercent",
    label: "Failure rate, percent",
    help: "Alert when this share of finished messages failed. Empty: off.",
    off: true,
  },
  {
    key: "failureRateWindowMinutes",
    label: "Failure rate window, minutes",
    help: "Over how long the rate is measured.",
    off: false,
  },
  {
    key: "failureRateMinMessages",
    label: "Failure rate needs at least, messages",
    help: "Fewer finished messages than this say nothing about a rate.",
    off: false,
  },
  {
    key: "microsoftIdleWarnDays",
    label: "Microsoft: warn days before 90 idle days",
    help: "Microsoft ends a refresh token unused for 90 days. Empty: off.",
    off: true,
  },
  {
    key: "googleTestingWarnDays",
    label: "Google app in Testing: warn days before",
    help: "Such apps' authorizations end after 7 days. Empty: off.",
    off: true,
  },
];

function toNumber(text: string): number | null | undefined {
  if (text.trim() === "") return null;
  return /^\s*\d+\s*$/.test(text) ? Number(text) : undefined;
}

/** The thresholds alerts fire at, with their defaults. */
export function ThresholdsPanel() {
  const settings = useLoad(() => api<AlertSettings>("GET", "/api/settings/alerts"), []);
  const [form, setForm] = useState<Record<string, string> | null>(null);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [notice, setNotice] = useState<Notice>(null);
  const [busy, setBusy] = useState(false);
  const s = settings.data;

  useEffect(() => {
    if (!s) return;
    const t = s.thresholds;
    setForm({
      ...Object.fromEntries(FIELDS.map((f) => [f.key, t[f.key] === null ? "" : String(t[f.key])])),
      clientSecretWarnDays: t.clientSecretWarnDays.join(", "),
    });
  }, [s]);

  if (!s || !form) return null;

  const save = async (event: FormEvent) => {
    event.preventDefault();
    const body: Record<string, unknown> = {};
    for (const f of FIELDS) {
      const value = toNumber(form[f.key]);
      if (value === undefined || (value === null && !f.off)) {
        setNotice({
          kind: "error",
          text: `${f.label}: enter a whole number${f.off ? ", or leave it empty to turn it off" : ""}.`,
        });
        return;
      }
      body[f.key] = value;
    }
    body.clientSecretWarnDays = form.clientSecretWarnDays
      .split(/[,\s]+/)
      .filter(Boolean)
      .map((d) => (/^\d+$/.test(d) ? Number(d) : d));
    setBusy(true);
    setNotice(null);
    setErrors({});
    try {
      await api("PUT", "/api/settings/alerts", body);
      setNotice({ kind: "success", text: "Saved: the next evaluation uses these thresholds." });
      await settings.reload();
    } catch (e) {
      if (e instanceof ApiError) setErrors(e.fields);
      setNotice({ kind: "error", text: errorMessage(e) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel" aria-labelledby="thresholds-heading">
      <h2 id="thresholds-heading">Thresholds</h2>
      <p className="help">
        {s.updatedAt ? `Changed by ${s.updatedBy}.` : "The defaults apply."} A threshold incident ends once the value is back
        under 80% of it, so a value on the edge does not alert again and again.
      </p>
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
      <form onSubmit={save} aria-label="Alert thresholds">
        <div className="grid-2">
          {FIELDS.map((f) => (
            <Field
              key={f.key}
              id={`threshold-${f.key}`}
              label={f.label}
              value={form[f.key]}
              error={errors[f.key]}
              help={`${f.help} Default: ${s.defaults[f.key] ?? "off"}.`}
              onChange={(v) => setForm({ ...form, [f.key]: v })}
            />
          ))}
          <Field
            id="threshold-clientSecretWarnDays"
            label="Client secret: warn days before its end date"
            value={form.clientSecretWarnDays}
            error={errors.clientSecretWarnDays}
            help={`Up to 3, separated by commas; each warns once. Empty: off. Default: ${s.defaults.clientSecretWarnDays.join(", ")}.`}
            onChange={(v) => setForm({ ...form, clientSecretWarnDays: v })}
          />
        </div>
        <div className="actions">
          <button type="submit" className="button primary" disabled={busy}>
            {busy ? "Saving…" : "Save thresholds"}
          </button>
        </div>
      </form>
    </section>
  );
}
