/**
 * The SMTP listener's certificate: the operator's PEM files, or a self-signed certificate
 * generated into the data folder on first start and kept, so clients that pinned its
 * fingerprint keep trusting it across restarts.
 */
import { X509Certificate } from "node:crypto";
import fs from "node:fs";
import { isIP } from "node:net";
import os from "node:os";
import path from "node:path";

export interface SmtpCertificate {
  key: string;
  cert: string;
  /** SHA-256 fingerprint, colon-separated hex, as `openssl x509 -fingerprint -sha256` prints it. */
  fingerprint: string;
  /** Where it was read from. */
  certFile: string;
  selfSigned: boolean;
}

export interface CertificateSource {
  certFile?: string;
  keyFile?: string;
  dataDir: string;
  /** Names clients may connect by, for a generated certificate's subjectAltName. */
  hostnames: string[];
}

/** Where a generated certificate lives. */
export function selfSignedPaths(dataDir: string): { certFile: string; keyFile: string } {
  const folder = path.join(dataDir, "smtp-tls");
  return { certFile: path.join(folder, "cert.pem"), keyFile: path.join(folder, "key.pem") };
}

/** Reads the configured files (again, on SIGHUP), or the generated pair, creating it if missing. */
export async function loadCertificate(source: CertificateSource): Promise<SmtpCertificate> {
  if (source.certFile && source.keyFile) {
    return readPair(source.certFile, source.keyFile, false);
  }
  const paths = selfSignedPaths(source.dataDir);
  if (!fs.existsSync(paths.certFile) || !fs.existsSync(paths.keyFile)) {
    await generateSelfSigned(paths, source.hostnames);
  }
  return readPair(paths.certFile, paths.keyFile, true);
}

function readPair(certFile: string, keyFile: string, selfSigned: boolean): SmtpCertificate {
  const cert = fs.readFileSync(certFile, "utf8");
  const key = fs.readFileSync(keyFile, "utf8");
  // Parsing proves the file is a certificate before any client sees a TLS failure.
  const fingerprint = new X509Certificate(cert).fingerprint256;
  return { key, cert, fingerprint, certFile, selfSigned };
}

async function generateSelfSigned(paths: { certFile: string; keyFile: string }, hostnames: string[]): Promise<void> {
  // Loaded only here: a start with the operator's certificate never needs it.
  const { generate } = await import("selfsigned");
  const names = [...new Set(["localhost", os.hostname(), ...hostnames].filter((n) => n && n !== "0.0.0.0" && n !== "::"))];
  const altNames = [
    ...names.map((n) => (isIP(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n })),
    { type: 7 as const, ip: "127.0.0.1" },
    { type: 7 as const, ip: "::1" },
  ];
  const notAfterDate = new Date();
  notAfterDate.setFullYear(notAfterDate.getFullYear() + 10);
  // RSA, not EC: printers and old mail libraries often speak nothing else.
  const pems = await generate([{ name: "commonName", value: names.find((n) => n !== "localhost") ?? "localhost" }], {
    keyType: "rsa",
    keySize: 2048,
    algorithm: "sha256",
    notAfterDate,
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames },
    ],
  });
  fs.mkdirSync(path.dirname(paths.keyFile), { recursive: true, mode: 0o700 });
  // The key first and only then the certificate: a start interrupted between the two finds
  // no certificate and makes a new pair instead of pairing a certificate with a lost key.
  fs.writeFileSync(paths.keyFile, pems.private, { mode: 0o600 });
  fs.writeFileSync(paths.certFile, pems.cert, { mode: 0o644 });
}
