import type { FastifyInstance, FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import { groupNotManageable, tokenNotManageable, userNotManageable } from "../../auth/manage.js";
import { lackedBy } from "../../auth/permissions.js";
import type { GroupView, UserInput, UserView } from "../../auth/users.js";
import { MailroomError } from "../../kernel/errors.js";
import { actorOf, requirePrincipal } from "../auth.js";
import { IdParams, ListQuery, listOf, PermissionList, ref, replies } from "../schemas.js";

const UserFields = {
  email: Type.String({ maxLength: 254 }),
  name: Type.Optional(Type.String({ maxLength: 200 })),
  password: Type.Optional(Type.String({ maxLength: 1024 })),
  superAdmin: Type.Optional(Type.Boolean()),
  disabled: Type.Optional(Type.Boolean()),
  groupIds: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 100 })),
};

const GroupBody = Type.Object(
  { name: Type.String({ maxLength: 200 }), permissions: PermissionList },
  { additionalProperties: false },
);

const TokenBody = Type.Object(
  {
    name: Type.String({ maxLength: 200 }),
    permissions: PermissionList,
    serverIds: Type.Optional(Type.Union([Type.Array(Type.String({ maxLength: 64 }), { maxItems: 100 }), Type.Null()])),
    expiresAt: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Null()])),
  },
  { additionalProperties: false },
);

/** Users, groups and API tokens: everything under users.manage. */
export function userRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  const { users, tokens } = mailroom;
  const id = (request: { params: unknown }) => (request.params as { id: string }).id;

  /** Nobody hands out a permission they lack, through a group or a membership. */
  const requireHeld = (request: FastifyRequest, granted: string[], how: string) => {
    const [lacking] = lackedBy(requirePrincipal(request), granted);
    if (lacking) {
      throw new MailroomError("forbidden", `You cannot ${how} '${lacking}': you do not have it yourself.`, {
        permission: lacking,
      });
    }
  };
  const groupPermissions = async (groupIds: string[] | undefined) =>
    (await Promise.all((groupIds ?? []).map((g) => users.getGroup(g)))).flatMap((g) => g.permissions);

  /** The target user, if the caller may change them (see src/auth/manage.ts). */
  const manageableUser = async (request: FastifyRequest): Promise<UserView> => {
    const target = await users.get(id(request));
    const refusal = userNotManageable(requirePrincipal(request), target);
    if (refusal) throw refusal;
    return target;
  };

  /** Says, on every user, group and token read, whether the caller may change it and why not. */
  const withAccess = <T>(item: T, refusal: MailroomError | null) => ({
    ...item,
    manageable: refusal === null,
    notManageableReason: refusal?.message ?? null,
  });
  const userWithAccess = (request: FastifyRequest, user: UserView) =>
    withAccess(user, userNotManageable(requirePrincipal(request), user));
  const groupWithAccess = (request: FastifyRequest, group: GroupView) =>
    withAccess(group, groupNotManageable(requirePrincipal(request), group));

  app.get(
    "/api/users",
    { schema: { tags: ["users"], summary: "List users", querystring: ListQuery, response: replies(200, listOf("User")) } },
    async (request) => {
      const page = await users.list(request.query as { limit?: number; offset?: number });
      return { ...page, items: page.items.map((u) => userWithAccess(request, u)) };
    },
  );
  app.post(
    "/api/users",
    {
      schema: {
        tags: ["users"],
        summary:
          "Create a user (without a password, one is generated and returned once); the password is one-time: it must be changed at the first sign-in",
        body: Type.Object(UserFields, { additionalProperties: false }),
        response: replies(201, ref("NewUser")),
      },
    },
    async (request, reply) => {
      const input = request.body as UserInput;
      if (input.superAdmin && !requirePrincipal(request).superAdmin) {
        throw new MailroomError("forbidden", "Only a super admin can create another super admin.");
      }
      requireHeld(request, await groupPermissions(input.groupIds), "add someone to a group that grants");
      // A password the manager knows is theirs, not the user's: it works once.
      const { user, generatedPassword } = await users.create({ ...input, mustChangePassword: true }, actorOf(request));
      return reply.status(201).send({ ...userWithAccess(request, user), generatedPassword });
    },
  );
  app.get(
    "/api/users/:id",
    {
      schema: {
        tags: ["users"],
        summary: "One user, with the API tokens that stop working if they are deleted, and whether you may change them",
        params: IdParams,
        response: replies(200, ref("User")),
      },
    },
    async (request) => userWithAccess(request, await users.get(id(request))),
  );
  app.patch(
    "/api/users/:id",
    {
      schema: {
        tags: ["users"],
        summary:
          "Change a user's fields (only users holding no permission you lack); a password set here must be changed at their next sign-in",
        params: IdParams,
        body: Type.Partial(Type.Object(UserFields), { additionalProperties: false }),
        response: replies(200, ref("User")),
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      const input = request.body as UserInput;
      if (input.superAdmin !== undefined && !principal.superAdmin) {
        throw new MailroomError("forbidden", "Only a super admin can grant or remove super admin.");
      }
      const target = await manageableUser(request);
      requireHeld(request, await groupPermissions(input.groupIds), "add someone to a group that grants");
      // Someone else's password set here is known to whoever set it: it works once.
      const ownPassword = principal.kind === "user" && principal.userId === target.id;
      const user = await users.update(target.id, { ...input, mustChangePassword: !ownPassword }, actorOf(request));
      return userWithAccess(request, user);
    },
  );
  app.delete(
    "/api/users/:id",
    {
      schema: {
        tags: ["users"],
        summary: "Delete a user (only users holding no permission you lack); their API tokens stop working",
        params: IdParams,
      },
    },
    async (request, reply) => {
      const target = await manageableUser(request);
      await users.remove(target.id, actorOf(request));
      return reply.status(204).send();
    },
  );

  app.get(
    "/api/groups",
    { schema: { tags: ["users"], summary: "List groups", response: replies(200, listOf("Group")) } },
    async (request) => {
      const page = await users.listGroups();
      return { ...page, items: page.items.map((g) => groupWithAccess(request, g)) };
    },
  );
  app.post(
    "/api/groups",
    { schema: { tags: ["users"], summary: "Create a group", body: GroupBody, response: replies(201, ref("Group")) } },
    async (request, reply) => {
      const body = request.body as { name: string; permissions: string[] };
      requireHeld(request, body.permissions, "give a group");
      return reply.status(201).send(groupWithAccess(request, await users.createGroup(body, actorOf(request))));
    },
  );
  app.get(
    "/api/groups/:id",
    { schema: { tags: ["users"], summary: "One group", params: IdParams, response: replies(200, ref("Group")) } },
    async (request) => groupWithAccess(request, await users.getGroup(id(request))),
  );

  /** The group, if the caller holds every permission it grants. */
  const manageableGroup = async (request: FastifyRequest): Promise<GroupView> => {
    const group = await users.getGroup(id(request));
    const refusal = groupNotManageable(requirePrincipal(request), group);
    if (refusal) throw refusal;
    return group;
  };
  app.put(
    "/api/groups/:id",
    {
      schema: {
        tags: ["users"],
        summary: "Replace a group's name and permissions (only a group granting nothing you lack)",
        params: IdParams,
        body: GroupBody,
        response: replies(200, ref("Group")),
      },
    },
    async (request) => {
      const body = request.body as { name: string; permissions: string[] };
      const group = await manageableGroup(request);
      requireHeld(request, body.permissions, "give a group");
      return groupWithAccess(request, await users.updateGroup(group.id, body, actorOf(request)));
    },
  );
  app.delete(
    "/api/groups/:id",
    { schema: { tags: ["users"], summary: "Delete a group (only a group granting nothing you lack)", params: IdParams } },
    async (request, reply) => {
      const group = await manageableGroup(request);
      await users.removeGroup(group.id, actorOf(request));
      return reply.status(204).send();
    },
  );

  /** The token's owner, if it still exists (tokens of deleted users are revoked with them). */
  const ownerOf = async (createdBy: string | null) =>
    createdBy
      ? users.get(createdBy).catch((error: unknown) => {
          if (error instanceof MailroomError && error.code === "user_not_found") return null;
          throw error;
        })
      : null;
  const tokenRefusal = async (
    request: FastifyRequest,
    token: { name: string; permissions: string[]; createdBy: string | null },
  ) => tokenNotManageable(requirePrincipal(request), token, await ownerOf(token.createdBy));

  app.get(
    "/api/tokens",
    { schema: { tags: ["tokens"], summary: "List API tokens (never their values)", response: replies(200, listOf("Token")) } },
    async (request) => {
      const page = await tokens.list();
      const items = [];
      for (const token of page.items) items.push(withAccess(token, await tokenRefusal(request, token)));
      return { ...page, items };
    },
  );
  app.post(
    "/api/tokens",
    {
      schema: {
        tags: ["tokens"],
        summary:
          "Create an API token of yours; its value is in this reply only. It acts with its permissions narrowed to yours, and a token can only create a narrower one",
        body: TokenBody,
        response: replies(201, ref("NewToken")),
      },
    },
    async (request, reply) => {
      const principal = requirePrincipal(request);
      const { token, view } = await tokens.create(
        request.body as { name: string; permissions: string[]; serverIds?: string[] | null; expiresAt?: string | null },
        actorOf(request),
        principal,
      );
      return reply.status(201).send({ ...view, token });
    },
  );
  app.delete(
    "/api/tokens/:id",
    {
      schema: {
        tags: ["tokens"],
        summary: "Revoke an API token (only tokens of users you may change, yours included)",
        params: IdParams,
      },
    },
    async (request, reply) => {
      const row = await tokens.getRow(id(request));
      const refusal = await tokenRefusal(request, {
        name: row.name,
        permissions: JSON.parse(row.permissions),
        createdBy: row.created_by,
      });
      if (refusal) throw refusal;
      await tokens.revoke(row.id, actorOf(request));
      return reply.status(204).send();
    },
  );
}
