import type { ReactNode } from "react";
import type { DriverField } from "../../api";
import { SecretInput, SecretView, SettingInput, SettingView } from "../../components/SettingField";
import { fieldApplies, reentryReason, secretWillBeSet } from "../../serverForm";
import type { ServerForm } from "./useServerForm";

/** One driver setting's control: read-only, a secret (write-only), or a value; as text for a reader. */
export function settingControl(form: ServerForm, canEdit: boolean): (field: DriverField) => ReactNode {
  const { draft, driver, saved, errors } = form;
  const savedSameDriver = saved && saved.driver === draft.driver ? saved : null;
  return (field) => {
    // A field of another authentication method: hidden (and not sent).
    if (!fieldApplies(driver, field, draft.settings)) return null;
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
          onAction={(action) => form.setSecret(field.key, action)}
          onValue={(value) => form.setSecretValue(field.key, value)}
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
        onChange={(value) => form.setSetting(field.key, value)}
        error={error}
      />
    );
  };
}

/** The driver's settings that no panel of their own shows. */
export function SettingsSection({
  driverLabel,
  fields,
  canEdit,
  renderField,
}: {
  driverLabel: string;
  fields: DriverField[];
  canEdit: boolean;
  renderField: (field: DriverField) => ReactNode;
}) {
  return (
    <section className="panel" aria-labelledby="settings-heading">
      <h2 id="settings-heading">{driverLabel} settings</h2>
      {canEdit && (
        <p className="muted">
          Fields marked <span aria-hidden="true">*</span>
          <span className="visually-hidden">required</span> are required. Clear puts a setting back to its default.
        </p>
      )}
      <div className="settings">{fields.map(renderField)}</div>
    </section>
  );
}
