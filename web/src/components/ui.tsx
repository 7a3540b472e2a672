/** Small shared pieces: page headings, alerts, status pills, copy buttons, loading states. */
import { type ReactNode, useCallback, useEffect, useRef, useState } from "react";
import { ApiError, api, errorMessage, type ServerStatus } from "../api";
import { type ConfirmOptions, confirmDialog } from "./Confirm";

/** The page's h1; it takes focus when the page opens, so screen readers hear where they are. */
export function PageTitle({ children, title }: { children: ReactNode; title?: string }) {
  const ref = useRef<HTMLHeadingElement>(null);
  const text = title ?? (typeof children === "string" ? children : "");
  useEffect(() => {
    document.title = text ? `${text} · Mailroom` : "Mailroom";
    ref.current?.focus({ preventScroll: true });
  }, [text]);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {children}
    </h1>
  );
}

export function Alert({
  kind,
  children,
  onDismiss,
}: {
  kind: "error" | "success" | "warning" | "info";
  children: ReactNode;
  onDismiss?: () => void;
}) {
  return (
    <div className={`alert alert-${kind}`} role={kind === "error" ? "alert" : "status"}>
      <div className="alert-body">{children}</div>
      {onDismiss && (
        <button type="button" className="button small ghost" onClick={onDismiss}>
          Dismiss
        </button>
      )}
    </div>
  );
}

export function ErrorAlert({ error, onDismiss }: { error: unknown; onDismiss?: () => void }) {
  if (!error) return null;
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof ApiError ? error.code : null;
  return (
    <Alert kind="error" onDismiss={onDismiss}>
      {message}
      {code && <span className="muted"> ({code})</span>}
    </Alert>
  );
}

export const STATUS_LABELS: Record<ServerStatus, string> = {
  ready: "Ready",
  incomplete: "Incomplete",
  not_authorized: "Not authorized",
  reauthorization_required: "Reauthorization required",
  failing: "Failing",
};

export function StatusPill({ status }: { status: string }) {
  const label = STATUS_LABELS[status as ServerStatus] ?? MESSAGE_STATUS_LABELS[status] ?? status;
  return <span className={`pill pill-${status}`}>{label}</span>;
}

export const MESSAGE_STATUS_LABELS: Record<string, string> = {
  queued: "Queued",
  sending: "Sending",
  sent: "Sent",
  failed: "Failed",
  held: "Held",
  delivered: "Delivered",
  bounced: "Bounced",
  complained: "Complained",
};

/**
 * Copies text to the clipboard and says so (politely, for screen readers too). `label` is the
 * accessible name, e.g. "Copy the redirect URI"; it starts with the visible "Copy".
 */
export function CopyButton({ text, label, className }: { text: string; label: string; className?: string }) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  useEffect(() => {
    if (state === "idle") return;
    const timer = setTimeout(() => setState("idle"), 2500);
    return () => clearTimeout(timer);
  }, [state]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setState("copied");
    } catch {
      setState("failed");
    }
  };
  const rest = label.replace(/^Copy\b/, "");
  // The button keeps its name ("Copy Redirect URI"): what happened is said beside it, and aloud.
  return (
    <>
      <button type="button" className={className ?? "button small"} onClick={copy}>
        Copy
        {rest && <span className="visually-hidden">{rest}</span>}
      </button>
      <span className="copy-status" aria-live="polite">
        {state === "copied" ? "Copied" : state === "failed" ? "Could not copy: select the text instead" : ""}
      </span>
    </>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p className="loading" role="status">
      {what}…
    </p>
  );
}

/** Loads data once and on demand; keeps the last good value while reloading. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  // The latest loader, so that reload() stays the same function while the inputs change.
  const loader = useRef(load);
  loader.current = load;
  const reload = useCallback(async () => {
    const mine = ++seq.current;
    setLoading(true);
    try {
      const value = await loader.current();
      if (mine === seq.current) {
        setData(value);
        setError(null);
      }
    } catch (e) {
      if (mine === seq.current) setError(e);
    } finally {
      if (mine === seq.current) setLoading(false);
    }
  }, []);
  const key = JSON.stringify(deps);
  // biome-ignore lint/correctness/useExhaustiveDependencies: loads again whenever the caller's inputs (key) change
  useEffect(() => {
    void reload();
  }, [reload, key]);
  return { data, error, loading, reload, setData };
}

const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

export function formatTime(value: string | null | undefined): string {
  if (!value) return "—";
  return new Date(value).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
}

export function timeAgo(value: string | null | undefined, now = Date.now()): string {
  if (!value) return "never";
  const seconds = Math.round((new Date(value).getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 60) return relative.format(seconds, "second");
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  return relative.format(Math.round(seconds / 86400), "day");
}

export function Time({ value }: { value: string | null | undefined }) {
  if (!value) return <span>—</span>;
  return (
    <time dateTime={value} title={formatTime(value)}>
      {formatTime(value)}
    </time>
  );
}

export function formatAddress(a: { address: string; name?: string } | null | undefined): string {
  if (!a) return "—";
  return a.name ? `${a.name} <${a.address}>` : a.address;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function Pager({
  total,
  limit,
  offset,
  onChange,
}: {
  total: number;
  limit: number;
  offset: number;
  onChange: (offset: number) => void;
}) {
  if (total <= limit && offset === 0) return null;
  const from = total === 0 ? 0 : offset + 1;
  const to = Math.min(offset + limit, total);
  return (
    <nav className="pager" aria-label="Pages">
      <button
        type="button"
        className="button small"
        disabled={offset === 0}
        onClick={() => onChange(Math.max(0, offset - limit))}
      >
        Previous
      </button>
      <span>
        {from}–{to} of {total}
      </span>
      <button type="button" className="button small" disabled={to >= total} onClick={() => onChange(offset + limit)}>
        Next
      </button>
    </nav>
  );
}

/** What a page's last action did. */
export type Notice = { kind: "success" | "error"; text: string } | null;

export function NoticeAlert({ notice, onDismiss }: { notice: Notice; onDismiss: () => void }) {
  return notice ? (
    <Alert kind={notice.kind} onDismiss={onDismiss}>
      {notice.text}
    </Alert>
  ) : null;
}

/** Asks first (naming what goes), deletes, says what happened and reloads the list. */
export async function confirmThenDelete(
  ask: ConfirmOptions,
  path: string,
  done: string,
  reload: () => Promise<unknown>,
  say: (notice: Notice) => void,
): Promise<void> {
  if (!(await confirmDialog({ danger: true, ...ask }))) return;
  try {
    await api("DELETE", path);
    say({ kind: "success", text: done });
    await reload();
  } catch (e) {
    say({ kind: "error", text: errorMessage(e) });
  }
}
