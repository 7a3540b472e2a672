/** The SMTP sink as its own process, so it does not share the measured process's CPU. Prints its port. */
import { startSink } from "./lib.js";

const sink = await startSink();
console.log(`port ${sink.port}`);
process.on("SIGTERM", () => void sink.close().then(() => process.exit(0)));
