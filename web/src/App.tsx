import { type ReactNode, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { ApiError, api, type Me, setCsrfToken, setUnauthenticatedHandler, type User } from "./api";
import { ConfirmHost } from "./components/Confirm";
import { Layout } from "./components/Layout";
import { Loading } from "./components/ui";
import { AccountPage } from "./pages/Account";
import { AlertsPage } from "./pages/Alerts";
import { AuditPage } from "./pages/Audit";
import { CapturedMessagePage, CapturePage } from "./pages/Capture";
import { GroupsPage } from "./pages/Groups";
import { MessagePage } from "./pages/MessagePage";
import { MessagesPage } from "./pages/Messages";
import { NotFound } from "./pages/NotFound";
import { OverviewPage } from "./pages/Overview";
import { RoutesPage } from "./pages/Routes";
import { ServerPage } from "./pages/ServerPage";
import { ServersPage } from "./pages/Servers";
import { SignInPage } from "./pages/SignIn";
import { SuppressionsPage } from "./pages/Suppressions";
import { TokensPage } from "./pages/Tokens";
import { UsersPage } from "./pages/Users";
import { WebhookPage } from "./pages/WebhookPage";
import { WebhooksPage } from "./pages/Webhooks";
import { match, navigate, useLocation } from "./router";
import { canDo, type Session, SessionContext } from "./session";

export function App() {
  const [user, setUser] = useState<User | null | undefined>(undefined);
  const [notice, setNotice] = useState<string | null>(null);
  const location = useLocation();
  // Only a session this page had can end: a first visit's 401 from /api/auth/me is no news.
  const hadSession = useRef(false);

  const signedIn = useCallback((u: User, csrf: string | null) => {
    setCsrfToken(csrf);
    hadSession.current = true;
    setUser(u);
  }, []);

  useEffect(() => {
    setUnauthenticatedHandler(() => {
      setCsrfToken(null);
      if (hadSession.current) setNotice("Your session ended: sign in again.");
      hadSession.current = false;
      setUser(null);
    });
    api<Me>("GET", "/api/auth/me")
      // A session still on a one-time password signs in again, to choose its own first.
      .then((me) => (me.user && !me.user.mustChangePassword ? signedIn(me.user, me.csrfToken ?? null) : setUser(null)))
      .catch((e) => {
        if (!(e instanceof ApiError && e.status === 401)) setNotice(e.message);
        setUser(null);
      });
  }, [signedIn]);

  const session = useMemo<Session | null>(
    () =>
      user
        ? {
            user,
            can: (p) => canDo(user, p),
            signOut: async () => {
              try {
                await api("POST", "/api/auth/logout");
              } finally {
                setCsrfToken(null);
                hadSession.current = false;
                setNotice("You are signed out.");
                setUser(null);
                await navigate("/", { force: true, replace: true });
              }
            },
          }
        : null,
    [user],
  );

  if (user === undefined) return <Loading what="Starting" />;

  if (!session) {
    return (
      <>
        <SignInPage
          notice={notice}
          onSignedIn={(u, csrf) => {
            setNotice(null);
            signedIn(u, csrf);
          }}
        />
        <ConfirmHost />
      </>
    );
  }

  return (
    <SessionContext.Provider value={session}>
      <Layout>
        <Page
          path={location.path}
          session={session}
          onPasswordChanged={() => {
            setCsrfToken(null);
            hadSession.current = false;
            setNotice("Your password is changed: sign in with the new one.");
            setUser(null);
          }}
        />
      </Layout>
      <ConfirmHost />
    </SessionContext.Provider>
  );
}

/** Pages with parameters: the first pattern that matches the path wins. */
const ROUTES: { pattern: string; render: (p: Record<string, string>) => ReactNode }[] = [
  { pattern: "/servers/new", render: () => <ServerPage id={null} key="new" /> },
  { pattern: "/servers/:id", render: (p) => <ServerPage id={p.id} key={p.id} /> },
  { pattern: "/servers", render: () => <ServersPage /> },
  { pattern: "/routes", render: () => <RoutesPage /> },
  { pattern: "/messages/:id", render: (p) => <MessagePage id={p.id} key={p.id} /> },
  { pattern: "/messages", render: () => <MessagesPage /> },
  {
    pattern: "/capture/:serverId/:id",
    render: (p) => <CapturedMessagePage serverId={p.serverId} id={p.id} key={`${p.serverId}/${p.id}`} />,
  },
  { pattern: "/capture/:serverId", render: (p) => <CapturePage serverId={p.serverId} key={p.serverId} /> },
  { pattern: "/capture", render: () => <CapturePage /> },
  { pattern: "/users", render: () => <UsersPage /> },
  { pattern: "/groups", render: () => <GroupsPage /> },
  { pattern: "/tokens", render: () => <TokensPage /> },
  { pattern: "/webhooks/:id", render: (p) => <WebhookPage id={p.id} key={p.id} /> },
  { pattern: "/webhooks", render: () => <WebhooksPage /> },
  { pattern: "/audit", render: () => <AuditPage /> },
  { pattern: "/suppressions", render: () => <SuppressionsPage /> },
  { pattern: "/alerts", render: () => <AlertsPage /> },
];

function Page({ path, session, onPasswordChanged }: { path: string; session: Session; onPasswordChanged: () => void }) {
  const { can } = session;
  if (path === "/" || path === "") {
    if (can("messages.view")) return <OverviewPage />;
    if (can("email-servers.view")) return <ServersPage />;
    return <AccountPage onPasswordChanged={onPasswordChanged} />;
  }
  if (path === "/account") return <AccountPage onPasswordChanged={onPasswordChanged} />;
  for (const route of ROUTES) {
    const params = match(route.pattern, path);
    if (params) return route.render(params);
  }
  return <NotFound />;
}
