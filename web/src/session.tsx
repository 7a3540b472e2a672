import { createContext, useContext } from "react";
import type { Permission, User } from "./api";

export interface Session {
  user: User;
  can: (permission: Permission) => boolean;
  signOut: () => Promise<void>;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside a signed-in page");
  return session;
}

export function canDo(user: User, permission: Permission): boolean {
  return user.superAdmin || user.permissions.includes(permission);
}
