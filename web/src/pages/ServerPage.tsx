import type { FormEvent } from "react";
import type { TestReport } from "../api";
import { AppCredentialsPanel } from "../components/AppCredentialsPanel";
import { BouncesPanel } from "../components/BouncesPanel";
import { DeliveryState } from "../components/DeliveryState";
import { OAuthPanel } from "../components/OAuthPanel";
import { TestPanel } from "../components/TestPanel";
import { Alert, ErrorAlert, Loading, PageTitle, StatusPill } from "../components/ui";
import { Link } from "../router";
import { APP_CREDENTIAL_KEYS, appOnlyMethod, OAUTH_CLIENT_KEYS, OAUTH_GRANT_KEYS, secretWillBeSet } from "../serverForm";
import { useSession } from "../session";
import { ErrorSummary } from "./server/ErrorSummary";
import { GeneralSection } from "./server/GeneralSection";
import { SaveBar } from "./server/SaveBar";
import { SettingsSection, settingControl } from "./server/SettingsSection";
import { useServerForm } from "./server/useServerForm";

/** One email server: its state, its form (General, the OAuth account, the driver's settings) and its test. */
export function ServerPage({ id }: { id: string | null }) {
  const { user, can } = useSession();
  const canEdit = can("email-servers.update");
  const canTest = can("email-servers.test");
  const { loadError, form } = useServerForm(id, canEdit);

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
  if (!form) return <Loading what="Loading the server" />;

  const { draft, driver, saved, dirty, banner } = form;
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void form.save();
  };
  const renderField = settingControl(form, canEdit);
  const oauth = driver.oauthProvider !== null;
  const appMethod = appOnlyMethod(driver, draft);
  const authMethodField = driver.fields.find((f) => f.key === "authMethod");
  const panelKeys = oauth
    ? new Set([...OAUTH_CLIENT_KEYS, ...OAUTH_GRANT_KEYS, ...APP_CREDENTIAL_KEYS, "authMethod"])
    : new Set<string>();
  const clientReady =
    String(draft.settings.clientId ?? "").trim() !== "" &&
    (secretWillBeSet("clientSecret", draft, saved) || draft.secrets.clientSecret === "replace");
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
          driverErrors={form.drivers.find((d) => d.id === saved.driver)?.errors ?? []}
          canCheck={canTest}
          onChecked={form.setSaved}
        />
      )}
      {canTest && (
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
        <Alert kind={banner.kind} onDismiss={() => form.setBanner(null)}>
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
          <ErrorSummary errors={form.errors} formError={form.formError} fields={driver.fields} summaryRef={form.summaryRef} />
          <GeneralSection form={form} canEdit={canEdit} />
          {authMethodField && (
            <section className="panel" aria-labelledby="auth-method-heading">
              <h2 id="auth-method-heading">Authentication</h2>
              {renderField(authMethodField)}
            </section>
          )}
          {appMethod && <AppCredentialsPanel driver={driver} method={appMethod} renderField={renderField} />}
          {oauth && !appMethod && (
            <OAuthPanel
              driver={driver}
              saved={saved && saved.driver === draft.driver ? saved : null}
              fromAddress={draft.fromAddress}
              canEdit={canEdit}
              dirty={dirty}
              clientReady={clientReady}
              renderField={renderField}
              saveFirst={form.save}
              onChanged={form.reload}
            />
          )}
          <SettingsSection
            driverLabel={driver.label}
            fields={driver.fields.filter((f) => !panelKeys.has(f.key))}
            canEdit={canEdit}
            renderField={renderField}
          />
          {canEdit && <SaveBar dirty={dirty} isNew={!saved} saving={form.saving} onDiscard={form.discard} />}
        </form>

        {canTest && (
          <aside className="server-aside" aria-label="Test this server">
            <TestPanel
              serverId={saved?.id ?? null}
              useDraft={dirty || !saved}
              draft={form.payloadOrProblems}
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
                if (Object.keys(fields).length) form.showErrors(fields, "The test found fields to fix first.");
              }}
            />
          </aside>
        )}
      </div>
      {saved && <BouncesPanel serverId={saved.id} driver={saved.driver} canEdit={canEdit} />}
    </section>
  );
}
