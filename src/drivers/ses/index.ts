import { type Driver, field } from "../types.js";
import { createSesTransport } from "./transport.js";

export const sesDriver: Driver = {
  id: "ses",
  label: "Amazon SES",
  description: "Amazon Simple Email Service (API v2).",
  fields: [
    field({
      key: "region",
      label: "Region",
      type: "text",
      default: "us-east-1",
      required: true,
      help: "The AWS region where your identities are verified, e.g. eu-west-1.",
    }),
    field({
      key: "accessKeyId",
      label: "Access key ID",
      type: "text",
      required: true,
      help: "Of an IAM user allowed ses:SendRawEmail and ses:GetAccount.",
    }),
    field({
      key: "secretAccessKey",
      label: "Secret access key",
      type: "text",
      required: true,
      secret: true,
      help: "Stored encrypted; never shown again.",
    }),
    field({
      key: "configurationSet",
      label: "Configuration set",
      type: "text",
      help: "Optional: for event publishing and dedicated IPs.",
    }),
    field({ key: "endpoint", label: "Endpoint", type: "url", help: "Optional: a custom SES endpoint, e.g. a VPC endpoint." }),
  ],
  createTransport: (ctx) => createSesTransport(ctx),
};
