import { type Driver, type DriverField, field } from "./types.js";

/** Settings every driver has: who it may send as, and how fast. */
export function commonFields(driver: Driver): DriverField[] {
  return [
    field({
      key: "allowedFromAddresses",
      label: "Other allowed from addresses",
      type: "list",
      default: [],
      help: "Addresses (or *@domain) applications may send as besides the from address. Gmail and Microsoft 365 also need them set up as aliases there.",
    }),
    field({
      key: "messagesPerSecond",
      label: "Messages per second",
      type: "integer",
      min: 1,
      max: 10000,
      help: "Mailroom spaces messages out to stay under this. Empty: no limit.",
    }),
    field({
      key: "messagesPerDay",
      label: "Messages per day",
      type: "integer",
      min: 1,
      max: 10_000_000,
      default: driver.defaultMessagesPerDay ?? null,
      help: "Messages beyond this in 24 hours wait for the next day instead of failing. Empty: no limit.",
    }),
  ];
}

export function withCommonFields(driver: Driver): Driver {
  return { ...driver, fields: [...driver.fields, ...commonFields(driver)] };
}
