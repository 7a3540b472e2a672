import { type Driver, field } from "../types.js";
import { capturedCopies, deleteCaptured, eraseCapturedFor, removeCaptured, removeCapturedBody } from "./store.js";
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
  keptCopies: {
    list: ({ dataDir, serverId }) => capturedCopies(dataDir, serverId),
    removeBody: ({ dataDir, serverId }, id, removedAt) => removeCapturedBody(dataDir, serverId, id, removedAt),
    remove: ({ dataDir, serverId }, id) => deleteCaptured(dataDir, serverId, id),
  },
};
