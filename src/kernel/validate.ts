/** Small syntax checks shared by settings, users and messages. */
import { isIPv6 } from "node:net";

// Any C0 control character (CR, LF, NUL, TAB…) or DEL: never allowed in a name or header.
const CONTROL = /[\u0000-\u001f\u007f]/;

export function hasControlCharacters(value: string): boolean {
  return CONTROL.test(value);
}

const LABEL = /^(?!-)[\p{L}\p{N}-]{1,63}(?<!-)$/u;

/** A DNS name (IDN allowed), IPv4 address or bracket-less IPv6 address. */
export function isHost(value: string): boolean {
  if (value.length > 253) return false;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(value)) return value.split(".").every((n) => Number(n) <= 255);
  if (value.includes(":")) return isIPv6(value);
  return value.split(".").every((label) => LABEL.test(label));
}

/** addr-spec syntax: a dot-atom or quoted local part, and a host domain (IDN allowed). */
export function isEmailAddress(value: string): boolean {
  if (value.length > 254 || hasControlCharacters(value)) return false;
  const at = value.lastIndexOf("@");
  if (at < 1) return false;
  const local = value.slice(0, at);
  const domain = value.slice(at + 1);
  const dotAtom = /^[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+(\.[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+)*$/u;
  const quoted = /^"([^"\\]|\\.)*"$/;
  return local.length <= 64 && (dotAtom.test(local) || quoted.test(local)) && domain.includes(".") && isHost(domain);
}

export function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}
