// Minting tokens with the server's secret (--auth-secret): HS256 JWTs, the
// same claims as `progressd token` and the Go and Python SDKs mint. Built
// on node:crypto's HMAC: signing one fixed algorithm takes a few lines and
// keeps the package free of dependencies. For a backend only: the secret
// must never reach a browser; hand the browser the minted token.
import { createHmac } from "node:crypto";

/** The server refuses shorter secrets; a token signed with one would never verify. */
const MIN_SECRET_BYTES = 16;

const SCOPE_KINDS = new Set(["job", "logs", "children", "tag", "project"]);

export interface MintTokenOptions {
  /** What the token may read and subscribe to: "job:<id>", "logs:<id>", "children:<id>", "tag:<t>", "project:<p>". */
  scope?: string[];
  /** No reports, no log lines: the token for an end user's browser. */
  readOnly?: boolean;
  /** Seconds until it expires. Default 3600. */
  ttl?: number;
  /** An admin token (sees everyone's jobs, may create jobs for others); cannot be scoped. */
  admin?: boolean;
  /** Issued-at, in seconds since the epoch (tests). Default now. */
  now?: number;
}

const b64 = (b: Buffer | string) => Buffer.from(b).toString("base64url");

/** An HS256 token for user sub, signed with the server's secret. */
export function mintToken(secret: string | Uint8Array, sub: string, opts: MintTokenOptions = {}): string {
  const key = typeof secret === "string" ? Buffer.from(secret, "utf8") : Buffer.from(secret);
  if (key.length < MIN_SECRET_BYTES) throw new RangeError(`progressd: the secret must be at least ${MIN_SECRET_BYTES} bytes (the server's --auth-secret)`);
  if (!sub) throw new TypeError("progressd: sub (the user id the token stands for) is required");
  const ttl = opts.ttl ?? 3600;
  if (!(ttl > 0)) throw new RangeError("progressd: ttl must be a positive number of seconds");
  if (opts.admin && (opts.scope || opts.readOnly)) throw new TypeError("progressd: an admin token cannot be scoped or read-only");
  const iat = Math.floor(opts.now ?? Date.now() / 1000);
  const claims: Record<string, unknown> = { sub, iat, exp: iat + Math.floor(ttl) };
  if (opts.admin) claims.admin = true;
  if (opts.scope) {
    for (const s of opts.scope) {
      const i = s.indexOf(":");
      if (i < 1 || i === s.length - 1 || !SCOPE_KINDS.has(s.slice(0, i))) {
        throw new TypeError(`progressd: scope entry ${JSON.stringify(s)} must be job:<id>, logs:<id>, children:<id>, tag:<t> or project:<p>`);
      }
    }
    claims.scope = [...opts.scope];
  }
  if (opts.readOnly) claims.read_only = true;
  const input = b64(JSON.stringify({ alg: "HS256", typ: "JWT" })) + "." + b64(JSON.stringify(claims));
  return input + "." + createHmac("sha256", key).update(input).digest("base64url");
}
