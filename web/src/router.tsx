/**
 * A small router on the history API: the current location, navigation, links, and a guard
 * that asks before leaving a page with unsaved changes.
 */
import { type AnchorHTMLAttributes, type MouseEvent, useEffect, useSyncExternalStore } from "react";
import { confirmDialog } from "./components/Confirm";

export interface Location {
  path: string;
  search: URLSearchParams;
}

const listeners = new Set<() => void>();
let snapshot = read();

function read(): { path: string; search: string } {
  return { path: window.location.pathname, search: window.location.search };
}

function notify(): void {
  const next = read();
  if (next.path === snapshot.path && next.search === snapshot.search) return;
  snapshot = next;
  for (const listener of listeners) listener();
}

/** What a page with unsaved changes registers: the question to ask before leaving. */
let guard: { message: string } | null = null;

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

let restoring = false;
window.addEventListener("popstate", () => {
  if (restoring) {
    restoring = false;
    return;
  }
  if (!guard) return notify();
  // The browser has already moved: go back to the page, then ask.
  const target = `${window.location.pathname}${window.location.search}`;
  restoring = true;
  window.history.forward();
  void confirmLeave().then((ok) => {
    if (ok) {
      guard = null;
      window.history.pushState(null, "", target);
      notify();
    }
  });
});

window.addEventListener("beforeunload", (event) => {
  if (guard) event.preventDefault();
});

async function confirmLeave(): Promise<boolean> {
  if (!guard) return true;
  return confirmDialog({
    title: "Leave without saving?",
    message: guard.message,
    confirmLabel: "Leave without saving",
    cancelLabel: "Stay on this page",
    danger: true,
  });
}

export async function navigate(to: string, options: { replace?: boolean; force?: boolean } = {}): Promise<void> {
  if (!options.force && !(await confirmLeave())) return;
  if (options.force) guard = null;
  if (options.replace) window.history.replaceState(null, "", to);
  else window.history.pushState(null, "", to);
  notify();
  if (!options.replace) window.scrollTo(0, 0);
}

export function useLocation(): Location {
  const current = useSyncExternalStore(subscribe, () => snapshot);
  return { path: current.path, search: new URLSearchParams(current.search) };
}

/** While `dirty`, leaving the page (link, back button, reload, closing the tab) asks first. */
export function useLeaveGuard(dirty: boolean, message = "Your changes are not saved. Leave and lose them?"): void {
  useEffect(() => {
    if (!dirty) return;
    const mine = { message };
    guard = mine;
    return () => {
      if (guard === mine) guard = null;
    };
  }, [dirty, message]);
}

export function Link({ to, onClick, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { to: string }) {
  const handle = (event: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(event);
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    void navigate(to);
  };
  return <a href={to} onClick={handle} {...rest} />;
}

/** Matches "/servers/:id" against a path; returns the parameters or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split("/").filter(Boolean);
  const have = path.split("/").filter(Boolean);
  if (want.length !== have.length) return null;
  const params: Record<string, string> = {};
  for (const [i, part] of want.entries()) {
    if (part.startsWith(":")) params[part.slice(1)] = decodeURIComponent(have[i]);
    else if (part !== have[i]) return null;
  }
  return params;
}
