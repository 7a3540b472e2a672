import { declareDriverErrors } from "../../kernel/errors.js";

/** Microsoft Graph's own codes; README.md beside this file documents each. */
export const microsoftGraphErrors = {
  microsoft_graph_access_denied: {
    status: 502,
    summary:
      "Microsoft Graph refused access to the mailbox (403 ErrorAccessDenied): an application access policy or RBAC for Applications leaves it out, or the account may not send as it; widen the policy or send as an allowed mailbox.",
  },
  microsoft_graph_mailbox_not_enabled: {
    status: 502,
    summary:
      "Microsoft Graph cannot use this mailbox (MailboxNotEnabledForRESTAPI): it is on-premises, inactive, shared without a license, or not in Exchange Online; use an Exchange Online mailbox.",
  },
} as const;

export const microsoftGraphCode = declareDriverErrors(microsoftGraphErrors);
