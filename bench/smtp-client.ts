/**
 * The SMTP client of `bench/smtp.ts`, as its own process (an application would be):
 * nodemailer with a pool, STARTTLS, a token as the password. Prints one JSON line.
 *
 *   node --import tsx bench/smtp-client.ts <port> <token> <n> <connections> <ca-file>
 *
 * With the token "-" it sends in plain text without a login (to the sink: the client's own ceiling).
 */
import fs from "node:fs";
import nodemailer from "nodemailer";

const [port, token, n, connections, caFile] = process.argv.slice(2);
const N = Number(n);
const secured =
  token === "-"
    ? { ignoreTLS: true }
    : { requireTLS: true, tls: { ca: fs.readFileSync(caFile, "utf8") }, auth: { user: "bench", pass: token } };
const transport = nodemailer.createTransport({
  host: "localhost",
  port: Number(port),
  ...secured,
  pool: true,
  maxConnections: Number(connections),
  maxMessages: Number.POSITIVE_INFINITY,
});
let next = 0;
let rejected = 0;
const started = performance.now();
// Two sends in flight per connection keep every pooled connection busy.
const lanes = Array.from({ length: Number(connections) * 2 }, async () => {
  while (next < N) {
    const i = next++;
    try {
      await transport.sendMail({
        from: "bench@example.com",
        to: `r${i}@example.com`,
        subject: `smtp bench ${i}`,
        text: "Hello from the SMTP benchmark.",
      });
    } catch {
      rejected++;
    }
  }
});
await Promise.all(lanes);
const seconds = (performance.now() - started) / 1000;
transport.close();
console.log(JSON.stringify({ accepted: N - rejected, rejected, seconds }));
