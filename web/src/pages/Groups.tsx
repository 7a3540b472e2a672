import { type FormEvent, useState } from "react";
import { ApiError, api, errorMessage, type Group, type List, type Manageable, type Permission } from "../api";
import { Alert, confirmThenDelete, ErrorAlert, Loading, type Notice, NoticeAlert, PageTitle, useLoad } from "../components/ui";

import { Field, NotManageable, PeopleTabs, PermissionChecks, permissionLabel } from "./people";

export function GroupsPage() {
  const groups = useLoad(() => api<List<Group & Manageable>>("GET", "/api/groups"), []);
  const [editing, setEditing] = useState<string | "new" | null>(null);
  const [notice, setNotice] = useState<Notice>(null);

  const remove = (g: Group) =>
    confirmThenDelete(
      {
        title: `Delete the group ${g.name}?`,
        message: `Its ${g.members} ${g.members === 1 ? "member loses" : "members lose"} the permissions it gives.`,
        confirmLabel: `Delete ${g.name}`,
        danger: true,
      },
      `/api/groups/${encodeURIComponent(g.id)}`,
      `Deleted the group ${g.name}.`,
      groups.reload,
      setNotice,
    );

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
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
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
                    <NotManageable item={g} />
                    <div className="row-actions" hidden={g.manageable === false}>
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
