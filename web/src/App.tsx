import { useCallback, useEffect, useMemo, useState } from "react";
import { ApiError, api, setCsrfToken, setUnauthenticatedHandler, type User } from "./api";
import { ConfirmHost } from "./components/Confirm";
import { Layout } from "./components/Layout";
import { Loading } from "./components/ui";
import { AccountPage } from "./pages/Account";
import { AuditPage } from "./pages/Audit";
import { CapturedMessagePage, CapturePage } from "./pages/Capture";
import { MessagePage } from "./pages/MessagePage";
import { MessagesPage } from "./pages/Messages";
import { NotFound } from "./pages/NotFound";
import { OverviewPage } from "./pages/Overview";
import { ServerPage } from "./pages/ServerPage";
import { ServersPage } from "./pages/Servers";
import { SignInPage } from "./pages/SignIn";
import { GroupsPage, TokensPage, UsersPage } from "./pages/Users";
import { match, navigate, useLocation } from "./router";
import { canDo, type Session, SessionContext } from "./session";

interface Me {
  user?: User;
  csrfToken?: string | null;
}

export function App() {
  const [user, setUser] = useState<User | null | undefined>(undefined);
  const [notice, setNotice] = useState<string | null>(null);
  const location = useLocation();

  const signedIn = useCallback((u: User, csrf: string | null) => {
    setCsrfToken(csrf);
    setUser(u);
  }, []);

  useEffect(() => {
    setUnauthenticatedHandler(() => {
      setCsrfToken(null);
      setNotice("Your session ended: sign in again.");
      setUser(null);
    });
    api<Me>("GET", "/api/auth/me")
      .then((me) => (me.user ? signedIn(me.user, me.csrfToken ?? null) : setUser(null)))
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
            setNotice("Your password is changed: sign in with the new one.");
            setUser(null);
          }}
        />
      </Layout>
      <ConfirmHost />
    </SessionContext.Provider>
  );
}

function Page({ path, session, onPasswordChanged }: { path: string; session: Session; onPasswordChanged: () => void }) {
  const { can } = session;
  let params: Record<string, string> | null;
  if (path === "/" || path === "") {
    if (can("messages.view")) return <OverviewPage />;
    if (can("email-servers.view")) return <ServersPage />;
    return <AccountPage onPasswordChanged={onPasswordChanged} />;
  }
  if (path === "/servers") return <ServersPage />;
  if (path === "/servers/new") return <ServerPage id={null} key="new" />;
  if ((params = match("/servers/:id", path))) return <ServerPage id={params.id} key={params.id} />;
  if (path === "/messages") return <MessagesPage />;
  if ((params = match("/messages/:id", path))) return <MessagePage id={params.id} key={params.id} />;
  if (path === "/capture") return <CapturePage />;
  if ((params = match("/capture/:serverId", path))) return <CapturePage serverId={params.serverId} key={params.serverId} />;
  if ((params = match("/capture/:serverId/:id", path)))
    return <CapturedMessagePage serverId={params.serverId} id={params.id} key={`${params.serverId}/${params.id}`} />;
  if (path === "/users") return <UsersPage />;
  if (path === "/groups") return <GroupsPage />;
  if (path === "/tokens") return <TokensPage />;
  if (path === "/audit") return <AuditPage />;
  if (path === "/account") return <AccountPage onPasswordChanged={onPasswordChanged} />;
  return <NotFound />;
}
