import { type ReactNode, useEffect, useRef, useState } from "react";
import type { Permission } from "../api";
import { Link, useLocation } from "../router";
import { useSession } from "../session";

interface NavItem {
  to: string;
  label: string;
  permission: Permission;
  /** Paths that belong to this item besides its own. */
  also?: string[];
}

const NAV: NavItem[] = [
  { to: "/", label: "Overview", permission: "messages.view" },
  { to: "/servers", label: "Email servers", permission: "email-servers.view" },
  { to: "/routes", label: "Routes", permission: "email-servers.view" },
  { to: "/messages", label: "Messages", permission: "messages.view", also: ["/capture"] },
  { to: "/suppressions", label: "Suppressions", permission: "messages.view" },
  { to: "/alerts", label: "Alerts", permission: "alerts.manage" },
  { to: "/tokens", label: "API tokens", permission: "users.manage" },
  { to: "/webhooks", label: "Webhooks", permission: "webhooks.manage" },
  { to: "/users", label: "Users", permission: "users.manage", also: ["/groups"] },
  { to: "/audit", label: "Audit log", permission: "audit.view" },
];

function isCurrent(item: NavItem, path: string): boolean {
  if (item.to === "/") return path === "/";
  return [item.to, ...(item.also ?? [])].some((p) => path === p || path.startsWith(`${p}/`));
}

export function Layout({ children }: { children: ReactNode }) {
  const { user, can, signOut } = useSession();
  const { path } = useLocation();
  const [menuOpen, setMenuOpen] = useState(false);
  const menuButton = useRef<HTMLButtonElement>(null);
  const items = NAV.filter((item) => can(item.permission));

  // Escape closes the open phone menu and gives focus back to its button.
  useEffect(() => {
    if (!menuOpen) return;
    const onKey = (event: KeyboardEvent) => {
      if (event.key !== "Escape") return;
      setMenuOpen(false);
      menuButton.current?.focus();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [menuOpen]);

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/" className="brand">
          <svg aria-hidden="true" viewBox="0 0 32 32" width="24" height="24">
            <rect width="32" height="32" rx="6" fill="currentColor" />
            <path d="M6 10h20v13H6z m0 0 10 8 10-8" fill="none" stroke="#fff" strokeWidth="2" />
          </svg>
          Mailroom
        </Link>
        <button
          ref={menuButton}
          type="button"
          className="button menu-toggle"
          aria-expanded={menuOpen}
          aria-controls="site-nav"
          onClick={() => setMenuOpen((o) => !o)}
        >
          Menu
        </button>
        <nav id="site-nav" aria-label="Main" className={menuOpen ? "open" : undefined}>
          <ul>
            {items.map((item) => (
              <li key={item.to}>
                <Link to={item.to} aria-current={isCurrent(item, path) ? "page" : undefined} onClick={() => setMenuOpen(false)}>
                  {item.label}
                </Link>
              </li>
            ))}
          </ul>
          <div className="account">
            <Link
              to="/account"
              aria-current={path === "/account" ? "page" : undefined}
              title={user.email}
              onClick={() => setMenuOpen(false)}
            >
              <span className="visually-hidden">Account: </span>
              {user.name || user.email}
            </Link>
            <button type="button" className="button small" onClick={() => void signOut()}>
              Sign out
            </button>
          </div>
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}
