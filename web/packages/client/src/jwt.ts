// Reads a token's claims client-side, without verifying it: the server
// verifies. The dashboard names the user (sub) and offers admins the owner
// filter; the client uses sub and admin to tell a token refresh from a
// change of user.

export interface TokenClaims {
  sub?: string;
  admin?: boolean;
  exp?: number;
}

function base64UrlDecode(s: string): string {
  let b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  while (b64.length % 4) b64 += "=";
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

/** The claims of a JWT, or null if token is not a readable JWT. */
export function decodeToken(token: string | null | undefined): TokenClaims | null {
  if (!token) return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const claims = JSON.parse(base64UrlDecode(parts[1]!)) as unknown;
    if (!claims || typeof claims !== "object") return null;
    const c = claims as Record<string, unknown>;
    return {
      sub: typeof c.sub === "string" ? c.sub : undefined,
      admin: c.admin === true,
      exp: typeof c.exp === "number" ? c.exp : undefined,
    };
  } catch {
    return null;
  }
}

/** The user a token acts as: its sub, or "local" without a token (single-user mode). */
export function tokenUser(token: string | null | undefined): string | null {
  if (!token) return "local";
  return decodeToken(token)?.sub ?? null;
}

/** A short non-cryptographic hash (FNV-1a, 32 bit), to name things after a token without holding it. */
export function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(36);
}

/**
 * Who a token acts as, as a key: tokens with the same key see the same
 * jobs, so one connection may serve them all (a refreshed token has the
 * same key; another user or an admin token does not).
 */
export function identityKey(token: string | null | undefined): string {
  if (!token) return "anonymous";
  const c = decodeToken(token);
  if (!c?.sub) return "opaque:" + fnv1a(token);
  return (c.admin ? "admin:" : "user:") + c.sub;
}
