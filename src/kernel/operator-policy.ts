/**
 * The shape of what only the operator decides (read from the environment by src/config.ts,
 * enforced by src/transport/operator.ts). Here so that the transport contract can name it.
 */
export interface SendmailCommand {
  program: string;
  args: string[];
}

/** One entry of MAILROOM_ALLOWED_ENDPOINTS: an origin, host:port, or a bare host (any port). */
export interface AllowedEndpoint {
  protocol?: "http:" | "https:";
  /** Lower case; IPv6 without brackets. */
  host: string;
  port?: number;
}

export interface OperatorPolicy {
  /** Name → program and arguments (MAILROOM_SENDMAIL_COMMANDS), in the order declared. */
  sendmailCommands: Record<string, SendmailCommand>;
  allowedEndpoints: AllowedEndpoint[];
  /**
   * The providers' mail API base URLs, when the operator points them elsewhere (tests, an
   * air-gapped proxy): MAILROOM_MICROSOFT_GRAPH_URL, MAILROOM_GOOGLE_GMAIL_API_URL. Absent:
   * the providers' own. Never a setting: an OAuth access token goes only where these say.
   */
  apiUrls?: { microsoftGraph?: string; googleGmail?: string };
}

/** What a transport built without an operator's word may do: nothing beyond the defaults. */
export const STRICT_OPERATOR: OperatorPolicy = { sendmailCommands: {}, allowedEndpoints: [] };
