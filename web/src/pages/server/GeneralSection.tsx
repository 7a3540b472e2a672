import { CopyButton } from "../../components/ui";
import type { ServerForm } from "./useServerForm";

/** Name, driver and sender: editable, or as facts for a reader without the edit permission. */
export function GeneralSection({ form, canEdit }: { form: ServerForm; canEdit: boolean }) {
  const { draft, driver, drivers, saved, errors, setGeneral } = form;
  return (
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
              onChange={(e) => form.changeDriver(e.target.value)}
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
