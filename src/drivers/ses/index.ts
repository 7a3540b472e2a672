import type { FieldProblem } from "../../kernel/errors.js";
import { checkProviderBase } from "../../transport/operator.js";
import { type Driver, field } from "../types.js";
import { sesErrors } from "./errors.js";
import { createSesTransport, isSesRegion, sesHosts } from "./transport.js";

export const sesDriver: Driver = {
  id: "ses",
  label: "Amazon SES",
  description: "Amazon Simple Email Service (API v2).",
  errors: sesErrors,
  example: { region: "eu-west-1", accessKeyId: "AKIAEXAMPLE123", secretAccessKey: "ses-secret", configurationSet: "tracking" },
  fields: [
    field({
      key: "region",
      label: "Region",
      type: "text",
      default: "us-east-1",
      required: true,
      destination: true,
      help: "The AWS region where your identities are verified, e.g. eu-west-1.",
    }),
    field({
      key: "accessKeyId",
      label: "Access key ID",
      type: "text",
      required: true,
      destination: true,
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
    field({
      key: "endpoint",
      label: "Endpoint",
      type: "url",
      destination: true,
      help: "Optional: the region's SES endpoint is used unless the operator lists another (a VPC endpoint) in MAILROOM_ALLOWED_ENDPOINTS.",
    }),
  ],
  checkDestinations: (settings, operator) => {
    const problems: FieldProblem[] = [];
    const region = String(settings.region ?? "");
    if (!isSesRegion(region)) problems.push({ field: "settings.region", message: "must be an AWS region, e.g. eu-west-1" });
    if (typeof settings.endpoint === "string") {
      const checked = checkProviderBase("SES", settings.endpoint, sesHosts(region), operator);
      if ("problem" in checked) problems.push({ field: "settings.endpoint", message: checked.problem });
    }
    return problems;
  },
  createTransport: (ctx) => createSesTransport(ctx),
};
