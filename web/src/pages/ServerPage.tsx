import { type FormEvent, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { ApiError, api, type Driver, type DriverField, type EmailServer, errorMessage, type List, type TestReport } from "../api";
import { DeliveryState } from "../components/DeliveryState";
import { OAuthPanel } from "../components/OAuthPanel";
import { SecretInput, SecretView, SettingInput, SettingView } from "../components/SettingField";
import { TestPanel } from "../components/TestPanel";
import { Alert, CopyButton, ErrorAlert, Loading, PageTitle, StatusPill } from "../components/ui";
import { oauthBanner } from "../oauthBanner";
import { Link, navigate, useLeaveGuard, useLocation } from "../router";
import {
  type Draft,
  draftOf,
  emptyDraft,
  type FormValue,
  OAUTH_CLIENT_KEYS,
  OAUTH_GRANT_KEYS,
  type Payload,
  reentryReason,
  type SecretAction,
  sameDraft,
  secretWillBeSet,
  toPayload,
} from "../serverForm";
import { useSession } from "../session";

/**
 * A message for the page of the server just created, which opens next. Kept until that page
 * has mounted: React may run a state initializer more than once, so reading must not clear it.
 */
let flash: { serverId: string; kind: "success"; text: string } | null = null;

const GENERAL_IDS: Record<string, string> = {
  name: "server-name",
  driver: "server-driver",
  fromAddress: "server-from-address",
  fromName: "server-from-name",
};

const GENERAL_LABELS: Record<string, string> = {
  name: "Name",
  driver: "Driver",
  fromAddress: "From address",
  fromName: "From name",
};

function controlId(path: string): string | undefined {
  if (GENERAL_IDS[path]) return GENERAL_IDS[path];
  if (path.startsWith("settings.")) return `setting-${path.slice(9)}`;
  return undefined;
}

export function ServerPage({ id }: { id: string | null }) {
  const { user, can } = useSession();
  const canEdit = can("email-servers.update");
  const location = useLocation();
  const [drivers, setDrivers] = useState<Driver[] | null>(null);
  const [saved, setSaved] = useState<EmailServer | null>(null);
  const [initial, setInitial] = useState<Draft | null>(null);
  const [draft, setDraft] = useState<Draft | null>(null);
  // New secret values: kept out of React state that renders, and out of the DOM's attributes.
  const secretValues = useRef<Record<string, string>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [banner, setBanner] = useState<{ kind: "success" | "error" | "info"; text: string } | null>(() => {
    const fromOauth = oauthBanner(new URLSearchParams(window.location.search));
    return fromOauth ?? (flash && flash.serverId === id ? { kind: flash.kind, text: flash.text } : null);
  });
  useEffect(() => {
    if (flash?.serverId === id) flash = null;
  }, [id]);
  const [saving, setSaving] = useState(false);
  const summaryRef = useRef<HTMLDivElement>(null);

  const load = useCallback(async () => {
    const [driverList, server] = await Promise.all([
      api<List<Driver>>("GET", "/api/drivers"),
      id ? api<EmailServer>("GET", `/api/email-servers/${encodeURIComponent(id)}`) : Promise.resolve(null),
    ]);
    setDrivers(driverList.items);
    setSaved(server);
    let next: Draft;
    if (server) {
      next = draftOf(server, driverList.items.find((d) => d.id === server.driver) ?? driverList.items[0]);
    } else {
      const wanted = new URLSearchParams(window.location.search).get("driver");
      next = emptyDraft(driverList.items.find((d) => d.id === wanted) ?? driverList.items[0]);
    }
    setDraft(next);
    setInitial(next);
    secretValues.current = {};
  }, [id]);

  useEffect(() => {
    load().catch(setLoadError);
  }, [load]);

  // The OAuth outcome is shown once; a reload should not show it again.
  useEffect(() => {
    if (id && location.search.get("oauth")) void navigate(`/servers/${encodeURIComponent(id)}`, { replace: true, force: true });
  }, [id, location.search]);

  const dirty = Boolean(draft && initial && !sameDraft(draft, initial));
  useLeaveGuard(canEdit && dirty);
  // A message about the last save or authorization is out of date once the form changes.
  useEffect(() => {
    if (dirty) setBanner(null);
  }, [dirty]);

  const driver = useMemo(() => drivers?.find((d) => d.id === draft?.driver) ?? null, [drivers, draft?.driver]);

  if (loadError) {
    return (
      <section>
        <PageTitle>Email server</PageTitle>
        <ErrorAlert error={loadError} />
        <p>
          <Link to="/servers">Back to the email servers</Link>
        </p>
      </section>
    );
  }
  if (!drivers || !draft || !driver) return <Loading what="Loading the server" />;

  // Updates build on the latest state: two quick edits in a row must both be kept.
  const setGeneral = (key: "name" | "fromAddress" | "fromName", value: string) =>
    setDraft((d) => (d ? { ...d, [key]: value } : d));
  const setSetting = (key: string, value: FormValue) =>
    setDraft((d) => (d ? { ...d, settings: { ...d.settings, [key]: value } } : d));
  const setSecret = (key: string, action: SecretAction) => {
    if (action !== "replace") delete secretValues.current[key];
    setDraft((d) => (d ? { ...d, secrets: { ...d.secrets, [key]: action } } : d));
  };

  const changeDriver = (driverId: string) => {
    const next = drivers.find((d) => d.id === driverId);
    if (!next) return;
    const keep = { name: draft.name, fromAddress: draft.fromAddress, fromName: draft.fromName };
    secretValues.current = {};
    setErrors({});
    setDraft(saved && saved.driver === driverId ? { ...draftOf(saved, next), ...keep } : emptyDraft(next, keep));
  };

  /** The form as a request; null (with the problems shown beside the fields) when it has some. */
  const payloadOrProblems = (): Payload | null => {
    const { payload, problems } = toPayload(draft, driver, secretValues.current, saved);
    if (!payload.name) problems.name = "Give the server a name, e.g. “Transactional mail”.";
    if (Object.keys(problems).length) {
      showErrors(problems, "Some fields need attention before this can go on.");
      return null;
    }
    return payload;
  };

  const showErrors = (fields: Record<string, string>, message: string) => {
    setErrors(fields);
    setFormError(message);
    requestAnimationFrame(() => summaryRef.current?.focus());
  };

  const save = async (): Promise<string | null> => {
    setBanner(null);
    const payload = payloadOrProblems();
    if (!payload) return null;
    setSaving(true);
    setFormError(null);
    try {
      const result = saved
        ? await api<EmailServer>("PUT", `/api/email-servers/${encodeURIComponent(saved.id)}`, payload)
        : await api<EmailServer>("POST", "/api/email-servers", payload);
      setErrors({});
      if (!saved) {
        flash = { serverId: result.id, kind: "success", text: `Created “${result.name}”.` };
        setInitial(draft);
        await navigate(`/servers/${encodeURIComponent(result.id)}`, { replace: true, force: true });
        return result.id;
      }
      const next = draftOf(result, drivers.find((d) => d.id === result.driver) ?? driver);
      secretValues.current = {};
      setSaved(result);
      setDraft(next);
      setInitial(next);
      setBanner({ kind: "success", text: `Saved “${result.name}”.` });
      return result.id;
    } catch (e) {
      if (e instanceof ApiError) showErrors(e.fields, e.message);
      else showErrors({}, errorMessage(e));
      return null;
    } finally {
      setSaving(false);
    }
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    void save();
  };

  const discard = () => {
    if (!initial) return;
    secretValues.current = {};
    setErrors({});
    setFormError(null);
    setDraft(initial);
  };

  const savedSameDriver = saved && saved.driver === draft.driver ? saved : null;
  const renderField = (field: DriverField) => {
    const error = errors[`settings.${field.key}`];
    if (field.readOnly) {
      return <SettingView key={field.key} field={field} value={savedSameDriver?.settings[field.key] as string | null} />;
    }
    if (field.secret) {
      const storedSet = secretWillBeSet(field.key, { ...draft, secrets: { ...draft.secrets, [field.key]: "keep" } }, saved);
      if (!canEdit) return <SecretView key={field.key} field={field} set={storedSet} />;
      // A moved destination (a new host, say) gets no saved secret: it must be typed again.
      const reentry = reentryReason(field.key, draft, driver, saved);
      return (
        <SecretInput
          key={`${draft.driver}-${field.key}`}
          field={field}
          storedSet={storedSet}
          reentry={reentry}
          action={reentry ? "replace" : (draft.secrets[field.key] ?? "keep")}
          onAction={(action) => setSecret(field.key, action)}
          onValue={(value) => {
            secretValues.current[field.key] = value;
          }}
          error={error}
        />
      );
    }
    if (!canEdit) return <SettingView key={field.key} field={field} value={draft.settings[field.key]} />;
    return (
      <SettingInput
        key={field.key}
        field={field}
        value={draft.settings[field.key] ?? ""}
        onChange={(value) => setSetting(field.key, value)}
        error={error}
      />
    );
  };

  const oauth = driver.oauthProvider !== null;
  const panelKeys = oauth ? new Set([...OAUTH_CLIENT_KEYS, ...OAUTH_GRANT_KEYS]) : new Set<string>();
  const otherFields = driver.fields.filter((f) => !panelKeys.has(f.key));
  const clientReady =
    String(draft.settings.clientId ?? "").trim() !== "" &&
    (secretWillBeSet("clientSecret", draft, saved) || draft.secrets.clientSecret === "replace");
  const errorList = Object.entries(errors);
  const title = saved ? saved.name : "New email server";

  return (
    <section className="server-page">
      <p className="breadcrumb">
        <Link to="/servers">Email servers</Link> <span aria-hidden="true">›</span>
      </p>
      <div className="page-head">
        <PageTitle title={title}>
          {title}
          {saved?.isDefault && <span className="badge">Default</span>}
        </PageTitle>
        {saved && (
          <div className="status-line">
            <StatusPill status={saved.status} />
            {/* A failing server's detail is told, readably, by DeliveryState below. */}
            {saved.statusDetail && saved.delivery?.state !== "open" && (
              <span className="status-detail">{saved.statusDetail}</span>
            )}
          </div>
        )}
      </div>
      {saved && (
        <DeliveryState
          server={saved}
          driverErrors={drivers.find((d) => d.id === saved.driver)?.errors ?? []}
          canCheck={can("email-servers.test")}
          onChecked={setSaved}
        />
      )}
      {can("email-servers.test") && (
        // On a phone the test panel comes after the whole form: a way there without scrolling.
        <p className="jump-to-test">
          <button
            type="button"
            className="button small"
            onClick={() => {
              const heading = document.getElementById("test-heading");
              heading?.scrollIntoView({ block: "start" });
              heading?.focus({ preventScroll: true });
            }}
          >
            Jump to Test this server
          </button>
        </p>
      )}
      {banner && (
        <Alert kind={banner.kind} onDismiss={() => setBanner(null)}>
          {banner.text}
        </Alert>
      )}
      {!canEdit && (
        <Alert kind="info">
          You can look at this server’s settings; changing them needs the “Edit email servers” permission.
        </Alert>
      )}

      <div className="server-layout">
        <form onSubmit={submit} noValidate aria-labelledby="general-heading" className="server-form">
          {(formError || errorList.length > 0) && (
            <div className="alert alert-error error-summary" role="alert" tabIndex={-1} ref={summaryRef}>
              <p>
                <strong>{formError ?? "Some fields need attention."}</strong>
              </p>
              {errorList.length > 0 && (
                <ul>
                  {errorList.map(([path, message]) => {
                    const target = controlId(path);
                    const label = GENERAL_LABELS[path] ?? driver.fields.find((f) => `settings.${f.key}` === path)?.label ?? path;
                    return (
                      <li key={path}>
                        {target ? (
                          <a
                            href={`#${target}`}
                            onClick={(e) => {
                              e.preventDefault();
                              document.getElementById(target)?.focus();
                            }}
                          >
                            {label}: {message}
                          </a>
                        ) : (
                          `${label}: ${message}`
                        )}
                      </li>
                    );
                  })}
                </ul>
              )}
            </div>
          )}

          <section className="panel" aria-labelledby="general-heading">
            <h2 id="general-heading">General</h2>
            {canEdit ? (
              <>
                <TextField
                  id="server-name"
                  label="Name"
                  required
                  value={draft.name}
                  error={errors.name}
                  help="How applications and this list name the server."
                  onChange={(v) => setGeneral("name", v)}
                />
                <div className="field">
                  <label htmlFor="server-driver">
                    Driver
                    <span className="required" aria-hidden="true">
                      {" "}
                      *
                    </span>
                  </label>
                  <p className="help" id="server-driver-help">
                    {driver.description}
                    {saved && saved.driver !== draft.driver && " Saving with another driver forgets the old driver’s secrets."}
                  </p>
                  <select
                    id="server-driver"
                    value={draft.driver}
                    onChange={(e) => changeDriver(e.target.value)}
                    aria-describedby="server-driver-help"
                  >
                    {drivers.map((d) => (
                      <option key={d.id} value={d.id}>
                        {d.label}
                      </option>
                    ))}
                  </select>
                  {errors.driver && <p className="field-error">{errors.driver}</p>}
                </div>
                <TextField
                  id="server-from-address"
                  label="From address"
                  type="email"
                  value={draft.fromAddress}
                  error={errors.fromAddress}
                  help="The address messages come from unless an application gives another allowed one."
                  onChange={(v) => setGeneral("fromAddress", v)}
                />
                <TextField
                  id="server-from-name"
                  label="From name"
                  value={draft.fromName}
                  error={errors.fromName}
                  help="The name shown beside the from address, e.g. “Acme Support”."
                  onChange={(v) => setGeneral("fromName", v)}
                />
              </>
            ) : (
              <dl className="facts">
                <dt>Name</dt>
                <dd>{draft.name}</dd>
                <dt>Driver</dt>
                <dd>{driver.label}</dd>
                <dt>From address</dt>
                <dd>
                  {draft.fromAddress || "—"}{" "}
                  {draft.fromAddress && <CopyButton text={draft.fromAddress} label="Copy the from address" />}
                </dd>
                <dt>From name</dt>
                <dd>{draft.fromName || "—"}</dd>
              </dl>
            )}
          </section>

          {oauth && (
            <OAuthPanel
              driver={driver}
              saved={savedSameDriver}
              fromAddress={draft.fromAddress}
              canEdit={canEdit}
              dirty={dirty}
              clientReady={clientReady}
              renderField={renderField}
              saveFirst={save}
              onChanged={load}
            />
          )}

          <section className="panel" aria-labelledby="settings-heading">
            <h2 id="settings-heading">{driver.label} settings</h2>
            {canEdit && (
              <p className="muted">
                Fields marked <span aria-hidden="true">*</span>
                <span className="visually-hidden">required</span> are required. Clear puts a setting back to its default.
              </p>
            )}
            <div className="settings">{otherFields.map(renderField)}</div>
          </section>

          {canEdit && (
            <div className={`save-bar${dirty ? " is-dirty" : ""}`}>
              <span className="save-state" aria-live="polite">
                {dirty ? "Unsaved changes" : saved ? "All changes saved" : "Not saved yet"}
              </span>
              {dirty && saved && (
                <button type="button" className="button" onClick={discard}>
                  Discard changes
                </button>
              )}
              <button type="submit" className="button primary" disabled={saving || (!dirty && !!saved)}>
                {saving ? "Saving…" : saved ? "Save" : "Create server"}
              </button>
            </div>
          )}
        </form>

        {can("email-servers.test") && (
          <aside className="server-aside" aria-label="Test this server">
            <TestPanel
              serverId={saved?.id ?? null}
              useDraft={dirty || !saved}
              draft={payloadOrProblems}
              defaultTo={user.email}
              afterSend={(report: TestReport) =>
                can("messages.view") && saved && !dirty ? (
                  <>
                    {saved.driver === "capture" && report.providerMessageId && (
                      <Link to={`/capture/${saved.id}/${encodeURIComponent(report.providerMessageId)}`}>
                        Open it in Captured mail
                      </Link>
                    )}{" "}
                    {report.logId && <Link to={`/messages/${report.logId}`}>See it in the delivery log</Link>}
                  </>
                ) : null
              }
              onFieldErrors={(fields) => {
                if (Object.keys(fields).length) showErrors(fields, "The test found fields to fix first.");
              }}
            />
          </aside>
        )}
      </div>
    </section>
  );
}

function TextField(props: {
  id: string;
  label: string;
  value: string;
  onChange: (value: string) => void;
  error?: string;
  help?: string;
  required?: boolean;
  type?: string;
}) {
  const describedBy = [props.help && `${props.id}-help`, props.error && `${props.id}-error`].filter(Boolean).join(" ");
  return (
    <div className="field">
      <label htmlFor={props.id}>
        {props.label}
        {props.required && (
          <span className="required">
            <span aria-hidden="true"> *</span>
            <span className="visually-hidden"> (required)</span>
          </span>
        )}
      </label>
      {props.help && (
        <p className="help" id={`${props.id}-help`}>
          {props.help}
        </p>
      )}
      <input
        id={props.id}
        type={props.type ?? "text"}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
        aria-invalid={props.error ? true : undefined}
        aria-describedby={describedBy || undefined}
        spellCheck={false}
        autoComplete="off"
      />
      {props.error && (
        <p className="field-error" id={`${props.id}-error`}>
          {props.error}
        </p>
      )}
    </div>
  );
}
