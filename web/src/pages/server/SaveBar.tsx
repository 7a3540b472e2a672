/** Where the form's state shows and its changes are saved or discarded. */
export function SaveBar({
  dirty,
  isNew,
  saving,
  onDiscard,
}: {
  dirty: boolean;
  isNew: boolean;
  saving: boolean;
  onDiscard: () => void;
}) {
  return (
    <div className={`save-bar${dirty ? " is-dirty" : ""}`}>
      <span className="save-state" aria-live="polite">
        {dirty ? "Unsaved changes" : isNew ? "Not saved yet" : "All changes saved"}
      </span>
      {dirty && !isNew && (
        <button type="button" className="button" onClick={onDiscard}>
          Discard changes
        </button>
      )}
      <button type="submit" className="button primary" disabled={saving || (!dirty && !isNew)}>
        {saving ? "Saving…" : isNew ? "Create server" : "Save"}
      </button>
    </div>
  );
}
