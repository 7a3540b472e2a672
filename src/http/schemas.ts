import { Type } from "typebox";

/** Shared request shapes. Objects refuse unknown fields: a typo is an error, not a no-op. */
export const listQueryProperties = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
};

export const ListQuery = Type.Object(listQueryProperties, { additionalProperties: false });

export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });

export const ErrorReply = Type.Object({
  code: Type.String(),
  message: Type.String(),
  details: Type.Optional(Type.Unknown()),
});

export const PermissionList = Type.Array(Type.String({ maxLength: 64 }), { maxItems: 32 });
