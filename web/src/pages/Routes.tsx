import { type FormEvent, useState } from "react";
import { ApiError, api, type EmailServer, errorMessage, type List, type Route, type RouteExplanation } from "../api";
import {
  Alert,
  confirmThenDelete,
  ErrorAlert,
  Loading,
  type Notice,
  NoticeAlert,
  PageTitle,
  StatusPill,
  useLoad,
} from "../components/ui";
import { useSession } from "../session";
import { Field } from "./people";

/** Route rules (first match wins) and the "which route would this message take?" tester. */
export function RoutesPage() {
  const canEdit = useSession().can("email-servers.update");
  const routes = useLoad(() => api<List<Route>>("GET", "/api/routes"), []);
  const servers = useLoad(() => api<List<EmailServer>>("GET", "/api/email-servers?limit=500"), []);
  const [editing, setEditing] = useState<string | "new" | null>(null);
  const [notice, setNotice] = useState<Notice>(null);
  const serverList = servers.data?.items ?? [];

  const remove = (r: Route) =>
    confirmThenDelete(
      {
        title: `Delete the route ${r.name}?`,
        message: "Mail it matched goes to the next matching route, or to the default server.",
        confirmLabel: `Delete ${r.name}`,
        danger: true,
      },
      `/api/routes/${encodeURIComponent(r.id)}`,
      `Deleted the route ${r.name}.`,
      routes.reload,
      setNotice,
    );

  const saved = async (r: Route, verb: string) => {
    setEditing(null);
    setNotice({ kind: "success", text: `${verb} the route ${r.name}.` });
    await routes.reload();
  };

  return (
    <section>
      <div className="page-head">
        <PageTitle>Routes</PageTitle>
        {canEdit && editing !== "new" && (
          <button type="button" className="button primary" onClick={() => setEditing("new")}>
            New route
          </button>
        )}
      </div>
      <p className="muted">
        A message that names no server goes through the servers of the first route it matches, the first that can take it first;
        no match sends it through the default server. A server problem or a rate limit moves it to the next server at once,
        temporary errors after their retries, a refused recipient never.
      </p>
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
      {editing === "new" && (
        <RouteEditor servers={serverList} onCancel={() => setEditing(null)} onSaved={(r) => saved(r, "Created")} />
      )}
      <ErrorAlert error={routes.error ?? servers.error} />
      {!routes.data && routes.loading && <Loading what="Loading routes" />}
      {routes.data && routes.data.items.length === 0 && (
        <p className="empty">No routes yet: every message goes through the server it names or the default server.</p>
      )}
      {routes.data && routes.data.items.length > 0 && (
        <table className="table responsive">
          <caption className="visually-hidden">Routes, in the order they are tried</caption>
          <thead>
            <tr>
              <th scope="col">Order</th>
              <th scope="col">Route</th>
              <th scope="col">Matches</th>
              <th scope="col">Servers</th>
              {canEdit && (
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              )}
            </tr>
          </thead>
          <tbody>
            {routes.data.items.map((r) =>
              editing === r.id ? (
                <tr key={r.id}>
                  <td colSpan={5}>
                    <RouteEditor
                      route={r}
                      servers={serverList}
                      onCancel={() => setEditing(null)}
                      onSaved={(s) => saved(s, "Saved")}
                    />
                  </td>
                </tr>
              ) : (
                <tr key={r.id}>
                  <td data-label="Order">{r.position}</td>
                  <th scope="row" data-label="Route">
                    {r.name}
                  </th>
                  <td data-label="Matches">{describeMatch(r.match)}</td>
                  <td data-label="Servers">
                    <ol className="route-servers">
                      {r.servers.map((s, i) => (
                        <li key={s.id}>
                          {s.name} <span className="muted">{i === 0 ? "(primary)" : "(fallback)"}</span>
                        </li>
                      ))}
                    </ol>
                  </td>
                  {canEdit && (
                    <td className="actions-cell">
                      <div className="row-actions">
                        <button
                          type="button"
                          className="button small"
                          onClick={() => setEditing(r.id)}
                          aria-label={`Edit ${r.name}`}
                        >
                          Edit
                        </button>
                        <button
                          type="button"
                          className="button small danger-outline"
                          onClick={() => void remove(r)}
                          aria-label={`Delete ${r.name}`}
                        >
                          Delete
                        </button>
                      </div>
                    </td>
                  )}
                </tr>
              ),
            )}
          </tbody>
        </table>
      )}
      <RouteTester />
    </section>
  );
}

function describeMatch(m: Route["match"]): string {
  const parts = [
    m.from && `From ${m.from.includes("@") ? m.from : `@${m.from}`}`,
    m.tag && `tag ${m.tag}`,
    m.token && `token ${m.token}`,
    m.recipientDomain && `every recipient @${m.recipientDomain}`,
  ].filter(Boolean);
  return parts.join(", and ");
}

function RouteEditor({
  route,
  servers,
  onCancel,
  onSaved,
}: {
  route?: Route;
  servers: EmailServer[];
  onCancel: () => void;
  onSaved: (r: Route) => Promise<void>;
}) {
  const [name, setName] = useState(route?.name ?? "");
  const [from, setFrom] = useState(route?.match.from ?? "");
  const [tag, setTag] = useState(route?.match.tag ?? "");
  const [token, setToken] = useState(route?.match.token ?? "");
  const [recipientDomain, setRecipientDomain] = useState(route?.match.recipientDomain ?? "");
  // Each slot keeps its key while the list is reordered, so React moves the right select.
  const [nextSlot, setNextSlot] = useState(1000);
  const [chosen, setChosen] = useState<{ slot: number; id: string }[]>(
    (route?.servers.map((s) => s.id) ?? [servers[0]?.id ?? ""]).map((id, slot) => ({ slot, id })),
  );
  const [position, setPosition] = useState(route ? String(route.position) : "");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const prefix = route ? `route-${route.id}` : "route-new";

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    const body = {
      name,
      match: { from: from || null, tag: tag || null, token: token || null, recipientDomain: recipientDomain || null },
      servers: chosen.map((c) => c.id).filter(Boolean),
      ...(position ? { position: Number(position) } : {}),
    };
    try {
      const saved = route
        ? await api<Route>("PUT", `/api/routes/${encodeURIComponent(route.id)}`, body)
        : await api<Route>("POST", "/api/routes", body);
      await onSaved(saved);
    } catch (e) {
      if (e instanceof ApiError) setErrors(e.fields);
      setError(errorMessage(e));
    }
  };

  const move = (i: number, by: number) => {
    const next = [...chosen];
    [next[i], next[i + by]] = [next[i + by], next[i]];
    setChosen(next);
  };

  return (
    <form className="panel editor" onSubmit={submit} aria-label={route ? `Edit ${route.name}` : "New route"}>
      <h2>{route ? `Edit ${route.name}` : "New route"}</h2>
      {error && <Alert kind="error">{error}</Alert>}
      <Field id={`${prefix}-name`} label="Name" required value={name} error={errors.name} onChange={setName} />
      <fieldset>
        <legend>Matches messages with (every condition given must hold)</legend>
        {errors.match && <p className="field-error">{errors.match}</p>}
        <Field
          id={`${prefix}-from`}
          label="From address or domain"
          help="billing@example.com, or example.com for any address of the domain."
          value={from}
          error={errors["match.from"]}
          onChange={setFrom}
        />
        <Field
          id={`${prefix}-tag`}
          label="Tag"
          help="The tag an application gives the message."
          value={tag}
          error={errors["match.tag"]}
          onChange={setTag}
        />
        <Field
          id={`${prefix}-token`}
          label="API token id"
          help="Mail sent with this API token (its id is on the API tokens page)."
          value={token}
          error={errors["match.token"]}
          onChange={setToken}
        />
        <Field
          id={`${prefix}-recipient`}
          label="Recipient domain"
          help="Every recipient (to, cc and bcc) is in this domain."
          value={recipientDomain}
          error={errors["match.recipientDomain"]}
          onChange={setRecipientDomain}
        />
      </fieldset>
      <fieldset>
        <legend>Servers, in the order they are tried</legend>
        {errors.servers && <p className="field-error">{errors.servers}</p>}
        <ol className="route-server-picker">
          {chosen.map(({ slot, id }, i) => (
            <li key={slot}>
              <label htmlFor={`${prefix}-server-${i}`}>{i === 0 ? "Primary" : `Fallback ${i}`}</label>
              <select
                id={`${prefix}-server-${i}`}
                value={id}
                onChange={(e) => setChosen(chosen.map((x, k) => (k === i ? { slot: x.slot, id: e.target.value } : x)))}
                aria-invalid={errors[`servers[${i}]`] ? true : undefined}
              >
                <option value="">Choose a server</option>
                {servers.map((s) => (
                  <option key={s.id} value={s.id}>
                    {s.name}
                  </option>
                ))}
              </select>
              <button
                type="button"
                className="button small"
                disabled={i === 0}
                onClick={() => move(i, -1)}
                aria-label={`Move ${i === 0 ? "the primary" : `fallback ${i}`} up`}
              >
                Up
              </button>
              <button
                type="button"
                className="button small"
                disabled={i === chosen.length - 1}
                onClick={() => move(i, 1)}
                aria-label={`Move ${i === 0 ? "the primary" : `fallback ${i}`} down`}
              >
                Down
              </button>
              <button
                type="button"
                className="button small danger-outline"
                disabled={chosen.length === 1}
                onClick={() => setChosen(chosen.filter((_, k) => k !== i))}
                aria-label={`Remove ${i === 0 ? "the primary" : `fallback ${i}`}`}
              >
                Remove
              </button>
              {errors[`servers[${i}]`] && <p className="field-error">{errors[`servers[${i}]`]}</p>}
            </li>
          ))}
        </ol>
        <button
          type="button"
          className="button small"
          onClick={() => {
            setChosen([...chosen, { slot: nextSlot, id: servers[0]?.id ?? "" }]);
            setNextSlot(nextSlot + 1);
          }}
        >
          Add a fallback
        </button>
      </fieldset>
      <Field
        id={`${prefix}-position`}
        label="Place in the order"
        type="number"
        help="1 is tried first. Empty: last for a new route, unchanged for an edit."
        value={position}
        onChange={setPosition}
      />
      <div className="actions">
        <button type="button" className="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="button primary">
          {route ? "Save" : "Create route"}
        </button>
      </div>
    </form>
  );
}

function RouteTester() {
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [tag, setTag] = useState("");
  const [token, setToken] = useState("");
  const [result, setResult] = useState<RouteExplanation | null>(null);
  const [error, setError] = useState<unknown>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      const recipients = to
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      setResult(
        await api<RouteExplanation>("POST", "/api/routes/explain", {
          from,
          to: recipients,
          ...(tag ? { tag } : {}),
          ...(token ? { token } : {}),
        }),
      );
    } catch (e) {
      setResult(null);
      setError(e);
    }
  };

  return (
    <section className="panel" aria-labelledby="route-tester-heading">
      <h2 id="route-tester-heading">Which route would this message take?</h2>
      <form onSubmit={submit} aria-label="Route tester">
        <Field id="tester-from" label="From" required value={from} onChange={setFrom} />
        <Field id="tester-to" label="Recipients" help="Separate addresses with commas." value={to} onChange={setTo} />
        <Field id="tester-tag" label="Tag" value={tag} onChange={setTag} />
        <Field id="tester-token" label="API token id" value={token} onChange={setToken} />
        <div className="actions">
          <button type="submit" className="button primary">
            Find the route
          </button>
        </div>
      </form>
      <ErrorAlert error={error} />
      <div aria-live="polite">
        {result && (
          <>
            <Alert kind={result.chosen ? "success" : "warning"}>{result.reason}</Alert>
            {result.servers.length > 0 && (
              <table className="table responsive">
                <caption className="visually-hidden">The route's servers</caption>
                <thead>
                  <tr>
                    <th scope="col">Server</th>
                    <th scope="col">Status</th>
                    <th scope="col">May send as {from}</th>
                  </tr>
                </thead>
                <tbody>
                  {result.servers.map((s) => (
                    <tr key={s.id}>
                      <th scope="row" data-label="Server">
                        {s.name} {result.chosen?.id === s.id && <span className="muted">(would send)</span>}
                      </th>
                      <td data-label="Status">
                        <StatusPill status={s.status} />
                      </td>
                      <td data-label={`May send as ${from}`}>
                        {s.fromAllowed ? "Yes" : "No: not its from address nor in its allowed list"}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </>
        )}
      </div>
    </section>
  );
}
