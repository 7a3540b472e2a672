import { type FormEvent, useState } from "react";
import { ApiError, api, errorMessage, type Group, type List, type Manageable, type NewUser, type User } from "../api";
import {
  Alert,
  CopyButton,
  confirmThenDelete,
  ErrorAlert,
  Loading,
  type Notice,
  NoticeAlert,
  PageTitle,
  useLoad,
} from "../components/ui";
import { useSession } from "../session";

import { Field, NotManageable, PeopleTabs, permissionLabel } from "./people";

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
  const users = useLoad(() => api<List<User & Manageable>>("GET", "/api/users?limit=500"), []);
  const groups = useLoad(() => api<List<Group>>("GET", "/api/groups"), []);
  const [editing, setEditing] = useState<string | "new" | null>(null);
  const [notice, setNotice] = useState<Notice>(null);
  const [generated, setGenerated] = useState<{ email: string; password: string } | null>(null);

  const remove = (u: User) =>
    confirmThenDelete(
      {
        title: `Delete ${u.email}?`,
        message: `${u.name || u.email} can no longer sign in.${tokensStopping(u.activeTokens)} Their changes stay in the audit log.`,
        confirmLabel: `Delete ${u.email}`,
        danger: true,
      },
      `/api/users/${encodeURIComponent(u.id)}`,
      `Deleted ${u.email}.`,
      users.reload,
      setNotice,
    );

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
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
      {generated && (
        <Alert kind="warning" onDismiss={() => setGenerated(null)}>
          <p>
            One-time password for {generated.email} (shown only now): <code className="secret-once">{generated.password}</code>{" "}
            <CopyButton text={generated.password} label="Copy the one-time password" />
          </p>
          <p>Give it to them privately: it works once, and they choose their own password when they first sign in.</p>
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
                    {u.mustChangePassword && <span className="badge badge-muted">One-time password</span>}
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
                    <NotManageable item={u} />
                    <div className="row-actions" hidden={u.manageable === false}>
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

function tokensStopping(count: number): string {
  if (!count) return "";
  return count === 1 ? " 1 API token of theirs will stop working." : ` ${count} API tokens of theirs will stop working.`;
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
        const created = await api<NewUser>("POST", "/api/users", body);
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
        help={
          user
            ? "Leave empty to keep the current one. A password you set here works once: they choose their own when they next sign in."
            : "Leave empty to generate one, shown once. Either works once: they choose their own when they first sign in."
        }
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
