import type { FastifyInstance, FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import type { Permission } from "../../auth/permissions.js";
import type { UserInput } from "../../auth/users.js";
import { MailroomError } from "../../core/errors.js";
import { actorOf, requirePrincipal } from "../auth.js";
import { IdParams, ListQuery, PermissionList } from "../schemas.js";

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

  /**
   * users.manage is not super admin: without this, its holder could set a super admin's
   * password or email, sign in as them and hold every permission.
   */
  const requireSuperAdminFor = async (request: FastifyRequest, userId: string, verb: string) => {
    const target = await users.get(userId);
    if (target.superAdmin && !requirePrincipal(request).superAdmin) {
      throw new MailroomError("forbidden", `Only a super admin can ${verb} a super admin (${target.email}).`);
    }
  };

  /** Nobody hands out a permission they lack, through a group or a membership. */
  const requireHeld = async (request: FastifyRequest, granted: string[], how: string) => {
    const principal = requirePrincipal(request);
    if (principal.superAdmin) return;
    const lacking = granted.find((p) => !principal.permissions.has(p as Permission));
    if (lacking) {
      throw new MailroomError("forbidden", `You cannot ${how} '${lacking}': you do not have it yourself.`, {
        permission: lacking,
      });
    }
  };
  const groupPermissions = async (groupIds: string[] | undefined) =>
    (await Promise.all((groupIds ?? []).map((g) => users.getGroup(g)))).flatMap((g) => g.permissions);

  app.get("/api/users", { schema: { tags: ["users"], summary: "List users", querystring: ListQuery } }, async (request) =>
    users.list(request.query as { limit?: number; offset?: number }),
  );
  app.post(
    "/api/users",
    {
      schema: {
        tags: ["users"],
        summary: "Create a user (without a password, one is generated and returned once)",
        body: Type.Object(UserFields, { additionalProperties: false }),
      },
    },
    async (request, reply) => {
      const input = request.body as UserInput;
      if (input.superAdmin && !requirePrincipal(request).superAdmin) {
        throw new MailroomError("forbidden", "Only a super admin can create another super admin.");
      }
      await requireHeld(request, await groupPermissions(input.groupIds), "add someone to a group that grants");
      const { user, generatedPassword } = await users.create(input, actorOf(request));
      return reply.status(201).send({ ...user, generatedPassword });
    },
  );
  app.get("/api/users/:id", { schema: { tags: ["users"], summary: "One user", params: IdParams } }, async (request) =>
    users.get(id(request)),
  );
  app.patch(
    "/api/users/:id",
    {
      schema: {
        tags: ["users"],
        summary: "Change a user's fields",
        params: IdParams,
        body: Type.Partial(Type.Object(UserFields), { additionalProperties: false }),
      },
    },
    async (request) => {
      const input = request.body as UserInput;
      if (input.superAdmin !== undefined && !requirePrincipal(request).superAdmin) {
        throw new MailroomError("forbidden", "Only a super admin can grant or remove super admin.");
      }
      await requireSuperAdminFor(request, id(request), "change");
      await requireHeld(request, await groupPermissions(input.groupIds), "add someone to a group that grants");
      return users.update(id(request), input, actorOf(request));
    },
  );
  app.delete(
    "/api/users/:id",
    { schema: { tags: ["users"], summary: "Delete a user", params: IdParams } },
    async (request, reply) => {
      await requireSuperAdminFor(request, id(request), "delete");
      await users.remove(id(request), actorOf(request));
      return reply.status(204).send();
    },
  );

  app.get("/api/groups", { schema: { tags: ["users"], summary: "List groups" } }, async () => users.listGroups());
  app.post("/api/groups", { schema: { tags: ["users"], summary: "Create a group", body: GroupBody } }, async (request, reply) => {
    const body = request.body as { name: string; permissions: string[] };
    await requireHeld(request, body.permissions, "give a group");
    return reply.status(201).send(await users.createGroup(body, actorOf(request)));
  });
  app.get("/api/groups/:id", { schema: { tags: ["users"], summary: "One group", params: IdParams } }, async (request) =>
    users.getGroup(id(request)),
  );
  app.put(
    "/api/groups/:id",
    { schema: { tags: ["users"], summary: "Replace a group's name and permissions", params: IdParams, body: GroupBody } },
    async (request) => {
      const body = request.body as { name: string; permissions: string[] };
      await requireHeld(request, body.permissions, "give a group");
      return users.updateGroup(id(request), body, actorOf(request));
    },
  );
  app.delete(
    "/api/groups/:id",
    { schema: { tags: ["users"], summary: "Delete a group", params: IdParams } },
    async (request, reply) => {
      await users.removeGroup(id(request), actorOf(request));
      return reply.status(204).send();
    },
  );

  app.get("/api/tokens", { schema: { tags: ["tokens"], summary: "List API tokens (never their values)" } }, async () =>
    tokens.list(),
  );
  app.post(
    "/api/tokens",
    { schema: { tags: ["tokens"], summary: "Create an API token; its value is in this reply only", body: TokenBody } },
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
    { schema: { tags: ["tokens"], summary: "Revoke an API token", params: IdParams } },
    async (request, reply) => {
      await tokens.revoke(id(request), actorOf(request));
      return reply.status(204).send();
    },
  );
}
