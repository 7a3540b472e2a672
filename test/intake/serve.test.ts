/**
 * `mailroom serve` as a real process: SMTP submission starts with it, prints the generated
 * certificate's fingerprint, reads renewed certificate files on SIGHUP, keeps the generated
 * certificate across restarts, stops on SIGTERM, and names the variable when its port is taken.
 */
import { X509Certificate } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import tls from "node:tls";
import { generate } from "selfsigned";
import { afterAll, describe, expect, it } from "vitest";
import { loadCertificate, selfSignedPaths } from "../../src/intake/smtp/tls.js";
import { tempDir } from "../helpers/databases.js";
import { spawnMailroom } from "../helpers/process.js";
import { waitFor } from "../helpers/wait.js";

/** The SHA-256 fingerprint of the certificate a TLS listener presents now. */
function presented(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? "");
      socket.destroy();
    });
    socket.once("error", reject);
  });
}

describe("mailroom serve with SMTP submission", () => {
  const dataDir = tempDir();
  const env = {
    MAILROOM_DATA_DIR: dataDir,
    MAILROOM_SMTP_PORT: "0",
    MAILROOM_SMTPS_PORT: "0",
    MAILROOM_ADMIN_EMAIL: "admin@example.com",
    MAILROOM_ADMIN_PASSWORD: "correct horse battery staple",
    DATABASE_URL: "",
    MAILROOM_SECRET_KEY: "",
  };
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it("prints the fingerprint, reloads the certificate on SIGHUP, keeps it across restarts", async () => {
    const first = await spawnMailroom(env);
    const out = first.output();
    const ports = /SMTP submission on port (\d+) \(STARTTLS\) and port (\d+) \(TLS\)/.exec(out);
    expect(ports, out).not.toBeNull();
    const tlsPort = Number(ports?.[2]);
    const paths = selfSignedPaths(dataDir);
    const generated = new X509Certificate(fs.readFileSync(paths.certFile)).fingerprint256;
    expect(out).toContain(`SHA-256 fingerprint: ${generated}`);
    expect(await presented(tlsPort)).toBe(generated);
    expect(fs.statSync(paths.keyFile).mode & 0o777).toBe(0o600);

    // A renewed pair in place of the old one, then SIGHUP: new sessions get it, no restart.
    const renewed = await generate([{ name: "commonName", value: "localhost" }], { keyType: "ec", curve: "P-256" });
    fs.writeFileSync(paths.keyFile, renewed.private);
    fs.writeFileSync(paths.certFile, renewed.cert);
    const fingerprint = new X509Certificate(renewed.cert).fingerprint256;
    first.child.kill("SIGHUP");
    await waitFor("the renewed certificate to be presented", async () => (await presented(tlsPort)) === fingerprint);
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);

    const second = await spawnMailroom(env);
    try {
      expect(second.output()).toContain(`SHA-256 fingerprint: ${fingerprint}`);
    } finally {
      second.child.kill("SIGTERM");
      await second.exited;
    }
  });

  it("a taken SMTP port stops the start with one line naming MAILROOM_SMTP_PORT", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const failed = await spawnMailroom({ ...env, MAILROOM_SMTP_PORT: String(port), MAILROOM_LOG_LEVEL: "silent" }).then(
        () => "started",
        (error: Error) => error.message,
      );
      expect(failed).toContain(`mailroom: MAILROOM_SMTP_PORT=${port} is in use by another program`);
    } finally {
      blocker.close();
    }
  });
});

it("the generated certificate names localhost, 127.0.0.1 and the public host", async () => {
  const dir = tempDir();
  try {
    const cert = await loadCertificate({ dataDir: dir, hostnames: ["mail.example.com"] });
    const x509 = new X509Certificate(cert.cert);
    expect(x509.subjectAltName).toContain("DNS:localhost");
    expect(x509.subjectAltName).toContain("DNS:mail.example.com");
    expect(x509.subjectAltName).toContain("IP Address:127.0.0.1");
    expect(cert).toMatchObject({
      selfSigned: true,
      certFile: path.join(dir, "smtp-tls", "cert.pem"),
      fingerprint: x509.fingerprint256,
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
