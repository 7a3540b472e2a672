import type { OperatorPolicy } from "../kernel/operator-policy.js";
import { captureDriver } from "./capture/index.js";
import { withCommonFields } from "./common-fields.js";
import { gmailDriver } from "./gmail/index.js";
import { gmailApiDriver } from "./gmail-api/index.js";
import { mailgunDriver } from "./mailgun/index.js";
import { microsoftGraphDriver } from "./microsoft-graph/index.js";
import { microsoft365Driver } from "./microsoft365/index.js";
import { postmarkDriver } from "./postmark/index.js";
import { resendDriver } from "./resend/index.js";
import { sendmailDriver } from "./sendmail/index.js";
import { sesDriver } from "./ses/index.js";
import { smtpDriver } from "./smtp/index.js";
import type { Driver } from "./types.js";

/** THE list of drivers. A new driver is a folder beside this file and one line here. */
export const drivers: readonly Driver[] = [
  smtpDriver,
  gmailDriver,
  microsoft365Driver,
  gmailApiDriver,
  microsoftGraphDriver,
  sendmailDriver,
  mailgunDriver,
  postmarkDriver,
  resendDriver,
  sesDriver,
  captureDriver,
].map(withCommonFields);

export const driverIds = drivers.map((d) => d.id);

export function findDriver(id: string): Driver | undefined {
  return drivers.find((d) => d.id === id);
}

/** Every secret setting key of every driver: what log redaction and export masking hide. */
export const secretFieldKeys = [...new Set(drivers.flatMap((d) => d.fields.filter((f) => f.secret).map((f) => f.key)))];

/** A driver as this installation offers it: fields completed from the operator's configuration. */
export function configuredDriver(driver: Driver, operator: OperatorPolicy): Driver {
  const patches = driver.operatorFields?.(operator);
  if (!patches) return driver;
  return { ...driver, fields: driver.fields.map((f) => (patches[f.key] ? { ...f, ...patches[f.key] } : f)) };
}
