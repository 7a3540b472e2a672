import { type Driver, field } from "../types.js";
import { eraseCapturedFor, removeCaptured } from "./store.js";
import { createCaptureTransport } from "./transport.js";

export const captureDriver: Driver = {
  id: "capture",
  label: "Capture",
  description: "Keeps every message in Mailroom instead of sending it: for development and testing.",
  example: { retention: 50 },
  fields: [
    field({
      key: "retention",
      label: "Messages kept",
      type: "integer",
      default: 1000,
      required: true,
      min: 1,
      max: 100000,
      help: "The oldest captured messages are dropped beyond this many.",
    }),
  ],
  createTransport: (ctx) => createCaptureTransport(ctx),
  removeData: ({ dataDir, serverId }) => removeCaptured(dataDir, serverId),
  eraseAddress: ({ dataDir, serverId, address, messageIds }) => eraseCapturedFor(dataDir, serverId, address, messageIds),
};
