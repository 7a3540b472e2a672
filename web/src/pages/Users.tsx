import { type FormEvent, useState } from "react";
import {
  ApiError,
  api,
  type EmailServer,
  errorMessage,
  type Group,
  type List,
  PERMISSIONS,
  type Permission,
  type Token,
  type User,
} from "../api";
import { confirmDialog } from "../components/Confirm";
import { Alert, CopyButton, ErrorAlert, Loading, PageTitle, Time, timeAgo, useLoad } from "../components/ui";
import { Link } from "../router";
import { useSession } from "../session";

type Notice = { kind: "success" | "error"; text: string } | null;

function PeopleTabs({ current }: { current: "users" | "groups" | "tokens" }) {
  return (
    <nav className="tabs" aria-label="Users and access">
      <Link to="/users" aria-current={current === "users" ? "page" : undefined}>
        Users
      </Link>
      <Link to="/groups" aria-current={current === "groups" ? "page" : undefined}>
        Groups
      </Link>
      <Link to="/tokens" aria-current={current === "tokens" ? "page" : undefined}>
        API tokens
      </Link>
    </nav>
  );
}

function permissionLabel(p: string): string {
  return PERMISSIONS.find((x) => x.key === p)?.label ?? p;
}

function PermissionChecks({
  idPrefix,
  value,
  onChange,
  legend,
}: {
  idPrefix: string;
  value: Permission[];
  onChange: (next: Permission[]) => void;
  legend: string;
}) {
  return (
    <fieldset className="checks">
      <legend>{legend}</legend>
      {PERMISSIONS.map((p) => (
        <div key={p.key} className="check">
          <input
            type="checkbox"
            id={`${idPrefix}-${p.key}`}
            checked={value.includes(p.key)}
            onChange={(e) => onChange(e.target.checked ? [...value, p.key] : value.filter((x) => x !== p.key))}
          />
          <label htmlFor={`${idPrefix}-${p.key}`}>
            {p.label} <span className="muted">({p.key})</span>
          </label>
        </div>
      ))}
    </fieldset>
  );
}

function Field({
  id,
  label,
  value,
  onChange,
  type = "text",
  error,
  help,
  required,
}: {
  id: string;
  label: string;
  value: string;
  onChange: (v: string) => void;
  type?: string;
  error?: string;
  help?: string;
  required?: boolean;
}) {
  const describedBy = [help && `${id}-help`, error && `${id}-error`].filter(Boolean).join(" ") || undefined;
  return (
    <div className="field">
      <label htmlFor={id}>
        {label}
        {required && <span className="visually-hidden"> (required)</span>}
      </label>
      {help && (
        <p className="help" id={`${id}-help`}>
          {help}
        </p>
      )}
      <input
        id={id}
        type={type}
        value={value}
        onChange={(e) => onChange(e.target.value)}
        aria-invalid={error ? true : undefined}
        aria-describedby={describedBy}
        autoComplete={type === "password" ? "new-password" : "off"}
      />
      {error && (
        <p className="field-error" id={`${id}-error`}>
          {error}
        </p>
      )}
    </div>
  );
}

// ---- Users ----

interface UserForm {
  email: string;
  name: string;
  password: string;
  superAdmin: boolean;
  disabled: boolean;
  groupIds: string[];
}

export function UsersPage() {
  const { user: me } = useSession();
  const users = useLoad(() => api<List<User>>("GET", "/api/users?limit=500"), []);
  const groups = useLoad(() => api<List<Group>>("GET", "/api/groups"), []);
  const [editing, setEditing] = useState<string | "new" | null>(null);
  const [notice, setNotice] = useState<Notice>(null);
  const [generated, setGenerated] = useState<{ email: string; password: string } | null>(null);

  const remove = async (u: User) => {
    const ok = await confirmDialog({
      title: `Delete ${u.email}?`,
      message: `${u.name || u.email} can no longer sign in. Their changes stay in the audit log.`,
      confirmLabel: `Delete ${u.email}`,
      danger: true,
    });
    if (!ok) return;
    try {
      await api("DELETE", `/api/users/${encodeURIComponent(u.id)}`);
      setNotice({ kind: "success", text: `Deleted ${u.email}.` });
      await users.reload();
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    }
  };

  return (
    <section>
      <div className="page-head">
        <PageTitle>Users</PageTitle>
        {editing !== "new" && (
          <button type="button" className="button primary" onClick={() => setEditing("new")}>
            New user
          </button>
        )}
      </div>
      <PeopleTabs current="users" />
      {notice && (
        <Alert kind={notice.kind} onDismiss={() => setNotice(null)}>
          {notice.text}
        </Alert>
      )}
      {generated && (
        <Alert kind="warning" onDismiss={() => setGenerated(null)}>
          <p>
            One-time password for {generated.email} (shown only now): <code className="secret-once">{generated.password}</code>{" "}
            <CopyButton text={generated.password} label="Copy the one-time password" />
          </p>
          <p>Give it to them privately; they should change it after signing in.</p>
        </Alert>
      )}
      {editing === "new" && groups.data && (
        <UserEditor
          groups={groups.data.items}
          canGrantSuper={me.superAdmin}
          onCancel={() => setEditing(null)}
          onSaved={async (u, password) => {
            setEditing(null);
            setNotice({ kind: "success", text: `Created ${u.email}.` });
            if (password) setGenerated({ email: u.email, password });
            await users.reload();
          }}
        />
      )}
      <ErrorAlert error={users.error ?? groups.error} />
      {!users.data && users.loading && <Loading what="Loading users" />}
      {users.data && (
        <table className="table responsive">
          <caption className="visually-hidden">Users</caption>
          <thead>
            <tr>
              <th scope="col">Email</th>
              <th scope="col">Name</th>
              <th scope="col">Access</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {users.data.items.map((u) =>
              editing === u.id && groups.data ? (
                <tr key={u.id}>
                  <td colSpan={4}>
                    <UserEditor
                      user={u}
                      groups={groups.data.items}
                      canGrantSuper={me.superAdmin}
                      onCancel={() => setEditing(null)}
                      onSaved={async (saved) => {
                        setEditing(null);
                        setNotice({ kind: "success", text: `Saved ${saved.email}.` });
                        await users.reload();
                      }}
                    />
                  </td>
                </tr>
              ) : (
                <tr key={u.id}>
                  <th scope="row" data-label="Email" className="break">
                    {u.email}
                    {u.id === me.id && <span className="badge">You</span>}
                    {u.disabled && <span className="badge badge-muted">Disabled</span>}
                  </th>
                  <td data-label="Name">{u.name || "—"}</td>
                  <td data-label="Access">
                    {u.superAdmin
                      ? "Super admin"
                      : u.groups.length
                        ? u.groups.map((g) => g.name).join(", ")
                        : "No groups: no permissions"}
                  </td>
                  <td className="actions-cell">
                    <div className="row-actions">
                      <button
                        type="button"
                        className="button small"
                        onClick={() => setEditing(u.id)}
                        aria-label={`Edit ${u.email}`}
                      >
                        Edit
                      </button>
                      {u.id !== me.id && (
                        <button
                          type="button"
                          className="button small danger-outline"
                          onClick={() => void remove(u)}
                          aria-label={`Delete ${u.email}`}
                        >
                          Delete
                        </button>
                      )}
                    </div>
                  </td>
                </tr>
              ),
            )}
          </tbody>
        </table>
      )}
    </section>
  );
}

function UserEditor({
  user,
  groups,
  canGrantSuper,
  onCancel,
  onSaved,
}: {
  user?: User;
  groups: Group[];
  canGrantSuper: boolean;
  onCancel: () => void;
  onSaved: (user: User, generatedPassword?: string | null) => Promise<void>;
}) {
  const [form, setForm] = useState<UserForm>({
    email: user?.email ?? "",
    name: user?.name ?? "",
    password: "",
    superAdmin: user?.superAdmin ?? false,
    disabled: user?.disabled ?? false,
    groupIds: user?.groups.map((g) => g.id) ?? [],
  });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const prefix = user ? `user-${user.id}` : "user-new";

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setErrors({});
    const body: Record<string, unknown> = {
      email: form.email,
      name: form.name,
      groupIds: form.groupIds,
      disabled: form.disabled,
    };
    if (form.password) body.password = form.password;
    if (canGrantSuper) body.superAdmin = form.superAdmin;
    try {
      if (user) {
        await onSaved(await api<User>("PATCH", `/api/users/${encodeURIComponent(user.id)}`, body));
      } else {
        const created = await api<User & { generatedPassword: string | null }>("POST", "/api/users", body);
        await onSaved(created, created.generatedPassword);
      }
    } catch (e) {
      if (e instanceof ApiError) setErrors(e.fields);
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="panel editor" onSubmit={submit} aria-label={user ? `Edit ${user.email}` : "New user"}>
      <h2>{user ? `Edit ${user.email}` : "New user"}</h2>
      {error && <Alert kind="error">{error}</Alert>}
      <div className="grid-2">
        <Field
          id={`${prefix}-email`}
          label="Email"
          type="email"
          required
          value={form.email}
          error={errors.email}
          onChange={(v) => setForm((f) => ({ ...f, email: v }))}
        />
        <Field
          id={`${prefix}-name`}
          label="Name"
          value={form.name}
          error={errors.name}
          onChange={(v) => setForm((f) => ({ ...f, name: v }))}
        />
      </div>
      <Field
        id={`${prefix}-password`}
        label={user ? "New password" : "Password"}
        type="password"
        value={form.password}
        error={errors.password}
        help={user ? "Leave empty to keep the current one." : "Leave empty to generate a one-time password, shown once."}
        onChange={(v) => setForm((f) => ({ ...f, password: v }))}
      />
      <fieldset className="checks">
        <legend>Groups</legend>
        {groups.length === 0 && <p className="muted">No groups yet: create one under Groups.</p>}
        {groups.map((g) => (
          <div key={g.id} className="check">
            <input
              type="checkbox"
              id={`${prefix}-group-${g.id}`}
              checked={form.groupIds.includes(g.id)}
              onChange={(e) => {
                const on = e.target.checked;
                setForm((f) => ({ ...f, groupIds: on ? [...f.groupIds, g.id] : f.groupIds.filter((x) => x !== g.id) }));
              }}
            />
            <label htmlFor={`${prefix}-group-${g.id}`}>
              {g.name} <span className="muted">({g.permissions.map(permissionLabel).join(", ") || "no permissions"})</span>
            </label>
          </div>
        ))}
      </fieldset>
      <div className="check">
        <input
          id={`${prefix}-disabled`}
          type="checkbox"
          checked={form.disabled}
          onChange={(e) => setForm((f) => ({ ...f, disabled: e.target.checked }))}
        />
        <label htmlFor={`${prefix}-disabled`}>Disabled (cannot sign in)</label>
      </div>
      {canGrantSuper && (
        <div className="check">
          <input
            id={`${prefix}-super`}
            type="checkbox"
            checked={form.superAdmin}
            onChange={(e) => setForm((f) => ({ ...f, superAdmin: e.target.checked }))}
          />
          <label htmlFor={`${prefix}-super`}>Super admin (every permission)</label>
        </div>
      )}
      <div className="actions">
        <button type="button" className="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="button primary" disabled={busy}>
          {busy ? "Saving…" : user ? "Save" : "Create user"}
        </button>
      </div>
    </form>
  );
}

// ---- Groups ----

export function GroupsPage() {
  const groups = useLoad(() => api<List<Group>>("GET", "/api/groups"), []);
  const [editing, setEditing] = useState<string | "new" | null>(null);
  const [notice, setNotice] = useState<Notice>(null);

  const remove = async (g: Group) => {
    const ok = await confirmDialog({
      title: `Delete the group ${g.name}?`,
      message: `Its ${g.members} ${g.members === 1 ? "member loses" : "members lose"} the permissions it gives.`,
      confirmLabel: `Delete ${g.name}`,
      danger: true,
    });
    if (!ok) return;
    try {
      await api("DELETE", `/api/groups/${encodeURIComponent(g.id)}`);
      setNotice({ kind: "success", text: `Deleted the group ${g.name}.` });
      await groups.reload();
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    }
  };

  return (
    <section>
      <div className="page-head">
        <PageTitle>Groups</PageTitle>
        {editing !== "new" && (
          <button type="button" className="button primary" onClick={() => setEditing("new")}>
            New group
          </button>
        )}
      </div>
      <PeopleTabs current="groups" />
      {notice && (
        <Alert kind={notice.kind} onDismiss={() => setNotice(null)}>
          {notice.text}
        </Alert>
      )}
      {editing === "new" && (
        <GroupEditor
          onCancel={() => setEditing(null)}
          onSaved={async (g) => {
            setEditing(null);
            setNotice({ kind: "success", text: `Created the group ${g.name}.` });
            await groups.reload();
          }}
        />
      )}
      <ErrorAlert error={groups.error} />
      {!groups.data && groups.loading && <Loading what="Loading groups" />}
      {groups.data && groups.data.items.length === 0 && (
        <p className="empty">No groups yet. A group gives its members permissions.</p>
      )}
      {groups.data && groups.data.items.length > 0 && (
        <table className="table responsive">
          <caption className="visually-hidden">Groups</caption>
          <thead>
            <tr>
              <th scope="col">Group</th>
              <th scope="col">Permissions</th>
              <th scope="col">Members</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {groups.data.items.map((g) =>
              editing === g.id ? (
                <tr key={g.id}>
                  <td colSpan={4}>
                    <GroupEditor
                      group={g}
                      onCancel={() => setEditing(null)}
                      onSaved={async (saved) => {
                        setEditing(null);
                        setNotice({ kind: "success", text: `Saved the group ${saved.name}.` });
                        await groups.reload();
                      }}
                    />
                  </td>
                </tr>
              ) : (
                <tr key={g.id}>
                  <th scope="row" data-label="Group">
                    {g.name}
                  </th>
                  <td data-label="Permissions">{g.permissions.map(permissionLabel).join(", ") || "None"}</td>
                  <td data-label="Members">{g.members}</td>
                  <td className="actions-cell">
                    <div className="row-actions">
                      <button
                        type="button"
                        className="button small"
                        onClick={() => setEditing(g.id)}
                        aria-label={`Edit ${g.name}`}
                      >
                        Edit
                      </button>
                      <button
                        type="button"
                        className="button small danger-outline"
                        onClick={() => void remove(g)}
                        aria-label={`Delete ${g.name}`}
                      >
                        Delete
                      </button>
                    </div>
                  </td>
                </tr>
              ),
            )}
          </tbody>
        </table>
      )}
    </section>
  );
}

function GroupEditor({
  group,
  onCancel,
  onSaved,
}: {
  group?: Group;
  onCancel: () => void;
  onSaved: (g: Group) => Promise<void>;
}) {
  const [name, setName] = useState(group?.name ?? "");
  const [permissions, setPermissions] = useState<Permission[]>(group?.permissions ?? []);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const prefix = group ? `group-${group.id}` : "group-new";

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      const body = { name, permissions };
      const saved = group
        ? await api<Group>("PUT", `/api/groups/${encodeURIComponent(group.id)}`, body)
        : await api<Group>("POST", "/api/groups", body);
      await onSaved(saved);
    } catch (e) {
      if (e instanceof ApiError) setErrors(e.fields);
      setError(errorMessage(e));
    }
  };

  return (
    <form className="panel editor" onSubmit={submit} aria-label={group ? `Edit ${group.name}` : "New group"}>
      <h2>{group ? `Edit ${group.name}` : "New group"}</h2>
      {error && <Alert kind="error">{error}</Alert>}
      <Field id={`${prefix}-name`} label="Name" required value={name} error={errors.name} onChange={setName} />
      <PermissionChecks idPrefix={`${prefix}-perm`} value={permissions} onChange={setPermissions} legend="Permissions" />
      <div className="actions">
        <button type="button" className="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="button primary">
          {group ? "Save" : "Create group"}
        </button>
      </div>
    </form>
  );
}

// ---- API tokens ----

export function TokensPage() {
  const tokens = useLoad(() => api<List<Token>>("GET", "/api/tokens"), []);
  const servers = useLoad(() => api<List<EmailServer>>("GET", "/api/email-servers?limit=500").catch(() => null), []);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<{ name: string; token: string } | null>(null);
  const [notice, setNotice] = useState<Notice>(null);
  const serverName = (id: string) => servers.data?.items.find((s) => s.id === id)?.name ?? id;

  const revoke = async (t: Token) => {
    const ok = await confirmDialog({
      title: `Revoke the token ${t.name}?`,
      message: `Applications using ${t.prefix} get 401 from now on. This cannot be undone.`,
      confirmLabel: `Revoke ${t.name}`,
      danger: true,
    });
    if (!ok) return;
    try {
      await api("DELETE", `/api/tokens/${encodeURIComponent(t.id)}`);
      setNotice({ kind: "success", text: `Revoked ${t.name}.` });
      await tokens.reload();
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    }
  };

  return (
    <section>
      <div className="page-head">
        <PageTitle>API tokens</PageTitle>
        {!creating && (
          <button type="button" className="button primary" onClick={() => setCreating(true)}>
            New token
          </button>
        )}
      </div>
      <PeopleTabs current="tokens" />
      {notice && (
        <Alert kind={notice.kind} onDismiss={() => setNotice(null)}>
          {notice.text}
        </Alert>
      )}
      {created && (
        <Alert kind="warning" onDismiss={() => setCreated(null)}>
          <p>
            <strong>Copy the token “{created.name}” now: it is shown only once.</strong>
          </p>
          <p className="copy-line">
            <code className="secret-once" id="new-token">
              {created.token}
            </code>
            <CopyButton text={created.token} label="Copy the new token" />
          </p>
          <p>
            Applications send it as <code>Authorization: Bearer &lt;token&gt;</code>.
          </p>
        </Alert>
      )}
      {creating && (
        <TokenEditor
          servers={servers.data?.items ?? []}
          onCancel={() => setCreating(false)}
          onCreated={async (name, token) => {
            setCreating(false);
            setCreated({ name, token });
            await tokens.reload();
          }}
        />
      )}
      <ErrorAlert error={tokens.error} />
      {!tokens.data && tokens.loading && <Loading what="Loading tokens" />}
      {tokens.data && tokens.data.items.length === 0 && <p className="empty">No API tokens yet.</p>}
      {tokens.data && tokens.data.items.length > 0 && (
        <table className="table responsive">
          <caption className="visually-hidden">API tokens</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Permissions</th>
              <th scope="col">Servers</th>
              <th scope="col">Last used</th>
              <th scope="col">Expires</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {tokens.data.items.map((t) => (
              <tr key={t.id}>
                <th scope="row" data-label="Name">
                  {t.name} <code className="muted">{t.prefix}</code>
                </th>
                <td data-label="Permissions">{t.permissions.join(", ")}</td>
                <td data-label="Servers">{t.serverIds ? t.serverIds.map(serverName).join(", ") : "All"}</td>
                <td data-label="Last used">{t.lastUsedAt ? timeAgo(t.lastUsedAt) : "never"}</td>
                <td data-label="Expires">{t.expiresAt ? <Time value={t.expiresAt} /> : "never"}</td>
                <td className="actions-cell">
                  <button
                    type="button"
                    className="button small danger-outline"
                    onClick={() => void revoke(t)}
                    aria-label={`Revoke ${t.name}`}
                  >
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function TokenEditor({
  servers,
  onCancel,
  onCreated,
}: {
  servers: EmailServer[];
  onCancel: () => void;
  onCreated: (name: string, token: string) => Promise<void>;
}) {
  const [name, setName] = useState("");
  const [permissions, setPermissions] = useState<Permission[]>(["messages.send"]);
  const [limit, setLimit] = useState(false);
  const [serverIds, setServerIds] = useState<string[]>([]);
  const [expires, setExpires] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      const result = await api<Token & { token: string }>("POST", "/api/tokens", {
        name,
        permissions,
        serverIds: limit ? serverIds : null,
        expiresAt: expires ? new Date(`${expires}T23:59:59`).toISOString() : null,
      });
      await onCreated(result.name, result.token);
    } catch (e) {
      if (e instanceof ApiError) setErrors(e.fields);
      setError(errorMessage(e));
    }
  };

  return (
    <form className="panel editor" onSubmit={submit} aria-label="New API token">
      <h2>New API token</h2>
      {error && <Alert kind="error">{error}</Alert>}
      <div className="grid-2">
        <Field
          id="token-name"
          label="Name"
          required
          value={name}
          error={errors.name}
          help="Which application uses it, e.g. “Billing app”."
          onChange={setName}
        />
        <Field
          id="token-expires"
          label="Expires on"
          type="date"
          value={expires}
          error={errors.expiresAt}
          help="Leave empty for a token that does not expire."
          onChange={setExpires}
        />
      </div>
      <PermissionChecks idPrefix="token-perm" value={permissions} onChange={setPermissions} legend="Permissions" />
      {errors.permissions && <p className="field-error">{errors.permissions}</p>}
      {servers.length > 0 && (
        <fieldset className="checks">
          <legend>Email servers</legend>
          <div className="check">
            <input id="token-limit" type="checkbox" checked={limit} onChange={(e) => setLimit(e.target.checked)} />
            <label htmlFor="token-limit">Only some servers</label>
          </div>
          {limit &&
            servers.map((s) => (
              <div key={s.id} className="check indent">
                <input
                  type="checkbox"
                  id={`token-server-${s.id}`}
                  checked={serverIds.includes(s.id)}
                  onChange={(e) => setServerIds(e.target.checked ? [...serverIds, s.id] : serverIds.filter((x) => x !== s.id))}
                />
                <label htmlFor={`token-server-${s.id}`}>{s.name}</label>
              </div>
            ))}
        </fieldset>
      )}
      <div className="actions">
        <button type="button" className="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="button primary">
          Create token
        </button>
      </div>
    </form>
  );
}
