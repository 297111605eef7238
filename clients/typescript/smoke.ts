// Drive a live Latchkey through openapi-fetch over the types that openapi-typescript
// generates from openapi.yaml: signup -> me -> refresh -> sessions -> logout -> me (401),
// plus one 422 and the refresh token in a cookie (signup, then refresh with only the cookie);
// then the mailed codes:
//   - email verification: the signup's user is unverified; the code the signup mailed
//     (wrong code 400 invalid_code, right code 200 verified); a new code is refused (409);
//   - recovery: login; forgot password (202 sent_if_registered, the same for an unknown
//     email); reset with a wrong code (400), a weak password (422 new_password), then the
//     mailed code (204); the old token is refused (401), the old password too, the new one
//     logs in;
//   - email change: change the email (202 sent), verify the code mailed to the new address
//     (200, the account has the new email);
// then the second factor, on an account of its own:
//   - TOTP: enrol with the password (secret, otpauth URI, QR as SVG), confirm with the current
//     code (10 recovery codes), GET /me says mfa [totp]; a login answers 403 mfa_required with
//     an mfa_token (read from the typed Problem error); /login/mfa refuses the code used at
//     confirm (a replay), then takes the next step's code (access token amr [pwd, otp]); a
//     second login: a wrong code (400 invalid_mfa_code), then a recovery code (200), its
//     mfa_token then spent (401); disable with the password and an unused recovery code
//     (204), after which GET /me says mfa [] and a login answers tokens directly. The codes
//     are computed here (RFC 6238 with node:crypto), checked first against the RFC's vectors;
// then passkeys (WebAuthn), with a software passkey written here (ES256 with node:crypto, a
// few lines of CBOR), on accounts of their own:
//   - an account with a password adds a passkey (register start -> finish 201), lists it,
//     renames it, logs out, logs in with it naming no account (amr [hwk]); the same answer
//     again is refused (400 invalid_ceremony), one signed for another origin too (401
//     invalid_credentials); removed (204), it logs in no more (401);
//   - an account signs up with a passkey alone (201, amr [hwk]): its only passkey cannot be
//     removed (409 last_credential), and a password login to it answers 401.
//   The origin the passkey reports is $LATCHKEY_PUBLIC_URL's (default http://localhost:8080).
// Usage: tsx smoke.ts [BASE_URL]   (default: $LATCHKEY_URL)
//
// The mailed codes are read from the server's log ($LATCHKEY_SERVER_LOG): without
// LATCHKEY_SMTP_URL, a server run with LATCHKEY_LOG=info logs each message it would send, with
// its recipient and text (where a code stands on a line `Your code: XXXXXXXX`).
// .ci/clients.sh runs it so.
//
// `npm run generate` writes generated/schema.d.ts (git-ignored); `npm run typecheck`
// (tsc --noEmit, strict) proves that the calls below match the generated types.
import { createHash, createHmac, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema";

type User = components["schemas"]["User"];
type TokenResponse = components["schemas"]["TokenResponse"];
type Session = components["schemas"]["Session"];
type Problem = components["schemas"]["Problem"];
type MailAccepted = components["schemas"]["MailAccepted"];
type TotpEnrolment = components["schemas"]["TotpEnrolment"];
type RecoveryCodes = components["schemas"]["RecoveryCodes"];
type Passkey = components["schemas"]["Passkey"];
type PasskeyCeremony = components["schemas"]["PasskeyCeremony"];
// The contract gives `credential` (and a ceremony's `options`) as a bare `type: object`, which
// The authenticator's JSON is cast to the contract's credential types (`asCredential`,
// `asRegistration`), and the options (a union of the two kinds) read through the interfaces
// below.
type Credential = components["schemas"]["FinishPasskeyLoginRequest"]["credential"];
type Registration = components["schemas"]["FinishPasskeyRegistrationRequest"]["credential"];

let passed = 0;
const failures: string[] = [];

function check(cond: boolean, what: string, detail?: unknown): boolean {
  if (cond) {
    passed += 1;
    console.log(`ok   ${what}`);
  } else {
    failures.push(what);
    console.log(`FAIL ${what}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
  }
  return cond;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// RFC 3339 with an explicit offset (the contract says UTC).
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const isTimestamp = (s: string): boolean => RFC3339.test(s) && !Number.isNaN(Date.parse(s));

// Checks that a call answered `status` with a Problem of `code`; answers the Problem.
function isProblem(
  result: { error?: Problem | undefined; response: Response },
  status: number,
  code: string,
  what: string,
): Problem | undefined {
  check(result.response.status === status, `${what} answers ${status}`, result.response.status);
  const problem = result.error;
  if (problem === undefined) {
    check(false, `the ${what} has a Problem body`);
    return undefined;
  }
  check(problem.code === code, `the ${what} problem code is ${code}`, problem.code);
  return problem;
}

// --- mailed codes, read from the server's log -------------------------------------------
// Without LATCHKEY_SMTP_URL the server logs each message at info: one event that names the
// recipient (`to=ada@example.com`, or `"to":"ada@example.com"` in the JSON format) and holds
// the text, where a code stands on a line of its own. The pretty format may colour the
// field names; an event's multi-line text runs on until the next event's timestamp.
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
const EVENT_START = /^(?=\d{4}-\d{2}-\d{2}T\d{2}:\d{2}|\{)/m;
const CODE_LINE = /(?:^|\\n|\n)\s*Your code: ([0-9A-HJKMNP-TV-Z]{8})(?![0-9A-Za-z])/g;
const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

// The codes mailed to `recipient` so far, oldest first.
function mailedCodes(logPath: string, recipient: string): string[] {
  let text: string;
  try {
    text = readFileSync(logPath, "utf8").replace(ANSI, "");
  } catch {
    return [];
  }
  const to = new RegExp(`(?:\\bto=|"to":\\s*")${escapeRegExp(recipient)}(?=[\\s"]|$)`, "i");
  const codes: string[] = [];
  const codesIn = (s: string): string[] => [...s.matchAll(CODE_LINE)].map((m) => m[1] ?? "");
  for (const event of text.split(EVENT_START)) {
    if (event.startsWith("{")) {
      let fields: unknown;
      try {
        fields = JSON.parse(event);
      } catch {
        fields = undefined;
      }
      if (typeof fields === "object" && fields !== null) {
        const { to: rcpt, text: body } = fields as { to?: unknown; text?: unknown };
        if (String(rcpt ?? "").toLowerCase() === recipient.toLowerCase()) codes.push(...codesIn(String(body ?? "")));
        continue;
      }
    }
    if (to.test(event)) codes.push(...codesIn(event));
  }
  return codes;
}

// Waits up to 10 s for a code mailed to `recipient` after the first `seen` ones.
async function waitForCode(logPath: string | undefined, recipient: string, seen: number, what: string): Promise<string | undefined> {
  if (!check(logPath !== undefined, `${what}: the server log is known`, "set LATCHKEY_SERVER_LOG") || logPath === undefined) {
    return undefined;
  }
  const deadline = performance.now() + 10_000;
  let codes = mailedCodes(logPath, recipient);
  while (codes.length <= seen && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    codes = mailedCodes(logPath, recipient);
  }
  if (!check(codes.length > seen, `${what}: a new code for ${recipient} is in the log`, codes)) return undefined;
  return codes[codes.length - 1];
}

// A code of the right form that is not `code`.
const wrongCode = (code: string): string => (code !== "00000000" ? "00000000" : "11111111");

// --- TOTP (RFC 6238), as an authenticator app computes it ---------------------------------
// HMAC-SHA-1 over the 30-second step number, dynamic truncation (RFC 4226), 6 digits.
const TOTP_STEP_SECONDS = 30;

function hotp(key: Buffer, counter: number, digits = 6): string {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac("sha1", key).update(message).digest();
  const offset = (mac[mac.length - 1] ?? 0) & 0x0f;
  const value = mac.readUInt32BE(offset) & 0x7fffffff;
  return (value % 10 ** digits).toString().padStart(digits, "0");
}

// The step a moment (now, by default) falls in.
const totpStep = (unixSeconds: number = Date.now() / 1000): number => Math.floor(unixSeconds / TOTP_STEP_SECONDS);
// The code of one step.
const totp = (key: Buffer, step: number, digits = 6): string => hotp(key, step, digits);

// The key of a secret given in base32 without padding (RFC 4648).
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
function base32Secret(secret: string): Buffer {
  const bytes: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of secret.toUpperCase().replace(/=+$/, "")) {
    const index = BASE32.indexOf(ch);
    if (index < 0) throw new Error(`not base32: ${JSON.stringify(ch)}`);
    value = ((value << 5) | index) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

// Six digits that are no code of `key` for any step near now.
function wrongTotp(key: Buffer): string {
  const now = totpStep();
  const near = new Set<string>();
  for (let step = now - 3; step <= now + 3; step += 1) near.add(totp(key, step));
  return ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"].map((d) => d.repeat(6)).find((c) => !near.has(c)) ?? "000000";
}

// The `amr` claim of a JWT's payload, unverified (the smoke only reads what the server put there).
function amrOf(token: string): unknown {
  try {
    const claims: unknown = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8"));
    return typeof claims === "object" && claims !== null ? (claims as { amr?: unknown }).amr : undefined;
  } catch (err) {
    return `undecodable: ${String(err)}`;
  }
}
const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

// --- a software passkey (WebAuthn L3 JSON, as a browser's credential.toJSON() gives it) ----
// Only what the server reads of the options; the contract leaves `options` untyped.
interface CreationOptions {
  challenge: string;
  rp: { id: string };
  user: { id: string };
  authenticatorSelection?: { residentKey?: string; userVerification?: string };
}
interface RequestOptions {
  challenge: string;
  rpId: string;
  allowCredentials?: unknown[];
  userVerification?: string;
}
const creationOptions = (c: PasskeyCeremony): CreationOptions => c.options as unknown as CreationOptions;
const requestOptions = (c: PasskeyCeremony): RequestOptions => c.options as unknown as RequestOptions;
const asCredential = (json: object): Credential => json as unknown as Credential;
const asRegistration = (json: object): Registration => json as unknown as Registration;

const sha256 = (data: Buffer | string): Buffer => createHash("sha256").update(data).digest();

// CBOR (RFC 8949), only the types an attestation object and a COSE key use. Map entries are
// written in the order given: the callers give CTAP2's canonical order.
type Cbor = number | string | Buffer | Map<Cbor, Cbor>;
function cbor(value: Cbor): Buffer {
  const head = (major: number, n: number): Buffer => {
    if (n < 24) return Buffer.from([(major << 5) | n]);
    if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
    if (n < 0x10000) return Buffer.from([(major << 5) | 25, n >> 8, n & 0xff]);
    const b = Buffer.alloc(5);
    b[0] = (major << 5) | 26;
    b.writeUInt32BE(n, 1);
    return b;
  };
  if (typeof value === "number") return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (typeof value === "string") return Buffer.concat([head(3, Buffer.byteLength(value)), Buffer.from(value)]);
  if (Buffer.isBuffer(value)) return Buffer.concat([head(2, value.length), value]);
  return Buffer.concat([head(5, value.size), ...[...value].flatMap(([k, v]) => [cbor(k), cbor(v)])]);
}

// Authenticator data flags (WebAuthn §6.1): user present, user verified, attested data.
const UP = 0x01;
const UV = 0x04;
const AT = 0x40;

// One ES256 passkey, as a platform authenticator holds it: a discoverable credential that
// verifies its user, with a counter that moves on at each use.
class SoftPasskey {
  readonly id = randomBytes(16);
  private readonly keys = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  private counter = 0;
  // The user handle the registration's options gave, returned at each login (a discoverable
  // login names no account: this is how the server finds it).
  private userHandle = "";

  constructor(private readonly origin: string) {}

  private authData(rpId: string, flags: number, attested?: Buffer): Buffer {
    const count = Buffer.alloc(4);
    count.writeUInt32BE(this.counter);
    return Buffer.concat([sha256(rpId), Buffer.from([flags]), count, attested ?? Buffer.alloc(0)]);
  }

  private clientData(type: string, challenge: string, origin: string): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }));
  }

  // The answer of navigator.credentials.create(), with attestation "none" (nothing vouches
  // for the authenticator's make), as synced passkeys answer.
  register(options: CreationOptions): object {
    this.userHandle = options.user.id;
    const jwk = this.keys.publicKey.export({ format: "jwk" });
    // COSE_Key (RFC 9053): kty EC2, alg ES256, crv P-256, x, y.
    const coseKey = cbor(
      new Map<Cbor, Cbor>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, Buffer.from(jwk.x ?? "", "base64url")],
        [-3, Buffer.from(jwk.y ?? "", "base64url")],
      ]),
    );
    const idLength = Buffer.alloc(2);
    idLength.writeUInt16BE(this.id.length);
    const attested = Buffer.concat([Buffer.alloc(16), idLength, this.id, coseKey]); // AAGUID 0: none
    const authData = this.authData(options.rp.id, UP | UV | AT, attested);
    const attestationObject = cbor(
      new Map<Cbor, Cbor>([
        ["fmt", "none"],
        ["attStmt", new Map()],
        ["authData", authData],
      ]),
    );
    return {
      id: this.id.toString("base64url"),
      rawId: this.id.toString("base64url"),
      type: "public-key",
      authenticatorAttachment: "platform",
      response: {
        clientDataJSON: this.clientData("webauthn.create", options.challenge, this.origin).toString("base64url"),
        attestationObject: attestationObject.toString("base64url"),
        transports: ["internal"],
      },
      clientExtensionResults: { credProps: { rk: true } },
    };
  }

  // The answer of navigator.credentials.get(); `origin` stands in for a page elsewhere.
  login(options: RequestOptions, origin: string = this.origin): object {
    this.counter += 1;
    const authData = this.authData(options.rpId, UP | UV);
    const clientDataJSON = this.clientData("webauthn.get", options.challenge, origin);
    const signature = sign("sha256", Buffer.concat([authData, sha256(clientDataJSON)]), {
      key: this.keys.privateKey,
      dsaEncoding: "der",
    });
    return {
      id: this.id.toString("base64url"),
      rawId: this.id.toString("base64url"),
      type: "public-key",
      authenticatorAttachment: "platform",
      response: {
        clientDataJSON: clientDataJSON.toString("base64url"),
        authenticatorData: authData.toString("base64url"),
        signature: signature.toString("base64url"),
        userHandle: this.userHandle,
      },
      clientExtensionResults: {},
    };
  }
}

function summary(started: number): number {
  console.log(`typescript client smoke took ${((performance.now() - started) / 1000).toFixed(1)}s`);
  console.log(`typescript: ${passed} passed, ${failures.length} failed`);
  return failures.length > 0 ? 1 : 0;
}

async function main(): Promise<number> {
  const baseUrl = (process.argv[2] ?? process.env["LATCHKEY_URL"] ?? "").replace(/\/+$/, "");
  if (!baseUrl) {
    console.error("usage: tsx smoke.ts BASE_URL (or set LATCHKEY_URL)");
    return 2;
  }
  console.log(`typescript client smoke against ${baseUrl}`);
  const started = performance.now();

  await accountFlow(baseUrl);
  await mfaFlow(baseUrl);
  await passkeyFlow(baseUrl);
  return summary(started);
}

// signup -> me -> refresh -> sessions -> logout, the cookie transport, then the mailed codes.
// Returns early where a failure leaves nothing to go on (the failure is counted).
async function accountFlow(baseUrl: string): Promise<void> {
  const client = createClient<paths>({ baseUrl });
  const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });

  const tag = Math.random().toString(36).slice(2, 14).padEnd(12, "0");
  const email = `ts-smoke-${tag}@example.com`;
  const username = `ts_${tag}`;
  const password = `ts smoke ${crypto.randomUUID()}`;
  const serverLog = process.env["LATCHKEY_SERVER_LOG"] || undefined;

  // --- signup ---------------------------------------------------------------------
  const su = await client.POST("/signup", {
    body: { email: email.toUpperCase(), password, username },
  });
  check(su.response.status === 201, "signup answers 201", su.response.status);
  if (su.data === undefined) {
    check(false, "signup has a TokenResponse body", su.error);
    return;
  }
  const tokens: TokenResponse = su.data;
  check(tokens.token_type === "Bearer", "signup token_type is Bearer", tokens.token_type);
  check(Number.isInteger(tokens.expires_in) && tokens.expires_in > 0, "signup expires_in is a positive integer", tokens.expires_in);
  check(tokens.access_token.split(".").length === 3, "signup access_token is a JWT");
  // `null` only with the cookie transport (below); the default is the body.
  const refreshToken = tokens.refresh_token;
  if (refreshToken === null) {
    check(false, "signup has the refresh_token in the body", tokens);
    return;
  }
  check(refreshToken.length >= 43, "signup refresh_token is long enough", refreshToken.length);
  const user: User = tokens.user;
  check(user.email === email, "signup user.email is the email, lowercased", user.email);
  check(user.username === username, "signup user.username is the username", user.username);
  check(UUID.test(user.id), "signup user.id is a lowercase UUID", user.id);
  check(isTimestamp(user.created_at), "signup user.created_at is RFC 3339", user.created_at);
  check(user.email_verified === false, "signup user.email_verified is false", user.email_verified);
  check(su.response.headers.get("cache-control") === "no-store", "signup has Cache-Control: no-store", su.response.headers.get("cache-control"));

  // --- me -------------------------------------------------------------------------
  const me = await client.GET("/me", bearer(tokens.access_token));
  check(me.response.status === 200, "GET /me answers 200", me.error);
  if (me.data === undefined) {
    check(false, "GET /me has a User body", me.error);
  } else {
    const body: User = me.data;
    check(body.email === email, "GET /me email matches", body.email);
    check(body.id === user.id, "GET /me id matches the signup's user", body.id);
    check(body.username === username, "GET /me username matches", body.username);
    check(body.email_verified === false, "GET /me email_verified is false", body.email_verified);
  }

  // --- verify the email with the code the signup mailed ------------------------------
  const signupCode = await waitForCode(serverLog, email, 0, "signup mailed a verification code");
  if (signupCode !== undefined) {
    const vw = await client.POST("/email/verify", { body: { email, code: wrongCode(signupCode) } });
    isProblem(vw, 400, "invalid_code", "POST /email/verify with a wrong code");
    const v = await client.POST("/email/verify", { body: { email, code: signupCode } });
    check(v.response.status === 200, "POST /email/verify with the mailed code answers 200", v.error);
    check(v.response.headers.get("cache-control") === "no-store", "POST /email/verify has Cache-Control: no-store", v.response.headers.get("cache-control"));
    if (v.data === undefined) {
      check(false, "POST /email/verify has a User body", v.error);
    } else {
      const verified: User = v.data;
      check(verified.email_verified === true, "POST /email/verify: email_verified is true", verified.email_verified);
      check(verified.id === user.id, "POST /email/verify is for the signup's user", verified.id);
      check(verified.email === email, "POST /email/verify keeps the email", verified.email);
    }
    const sv = await client.POST("/me/email/verification", bearer(tokens.access_token));
    isProblem(sv, 409, "email_already_verified", "POST /me/email/verification once verified");
  }

  // --- refresh --------------------------------------------------------------------
  const rf = await client.POST("/refresh", { body: { refresh_token: refreshToken } });
  check(rf.response.status === 200, "POST /refresh answers 200", rf.response.status);
  if (rf.data === undefined) {
    check(false, "POST /refresh has a TokenResponse body", rf.error);
    return;
  }
  const rotated: TokenResponse = rf.data;
  check(rotated.refresh_token !== tokens.refresh_token, "POST /refresh gives a new refresh token");
  check(rotated.access_token.length > 0, "POST /refresh gives an access token");
  check(rotated.user.id === user.id, "POST /refresh is for the same user", rotated.user.id);
  const auth = bearer(rotated.access_token);

  // --- sessions -------------------------------------------------------------------
  const ss = await client.GET("/sessions", auth);
  check(ss.response.status === 200, "GET /sessions answers 200", ss.error);
  if (ss.data === undefined) {
    check(false, "GET /sessions has an array body", ss.error);
  } else {
    const sessions: Session[] = ss.data;
    check(sessions.length === 1, "GET /sessions lists exactly one session", sessions.length);
    const s = sessions[0];
    if (s !== undefined) {
      check(s.current === true, "the session is current", s.current);
      check(UUID.test(s.id), "the session id is a lowercase UUID", s.id);
      check(
        [s.created_at, s.last_used_at, s.expires_at].every(isTimestamp),
        "the session timestamps are RFC 3339",
        [s.created_at, s.last_used_at, s.expires_at],
      );
      check(Date.parse(s.expires_at) > Date.parse(s.created_at), "the session expires after it was created");
      check(s.user_agent === null || typeof s.user_agent === "string", "the session user_agent is a string or null");
    }
  }

  // --- logout (no body: the default scope, `local`) -------------------------------
  const lo = await client.POST("/logout", auth);
  check(lo.response.status === 204, "POST /logout answers 204", lo.error);

  // --- me after logout ------------------------------------------------------------
  const me2 = await client.GET("/me", auth);
  check(me2.response.status === 401, "GET /me after logout answers 401", me2.response.status);
  if (me2.error === undefined) {
    check(false, "the 401 has a Problem body", me2.data);
  } else {
    const problem: Problem = me2.error;
    check(problem.code === "invalid_token", "the 401 problem code is invalid_token", problem.code);
    check(problem.status === 401, "the 401 problem status is 401", problem.status);
  }
  check(
    me2.response.headers.get("content-type")?.startsWith("application/problem+json") === true,
    "the 401 is application/problem+json",
    me2.response.headers.get("content-type"),
  );
  check(
    (me2.response.headers.get("www-authenticate") ?? "").includes('error="invalid_token"'),
    'the 401 has WWW-Authenticate with error="invalid_token"',
    me2.response.headers.get("www-authenticate"),
  );

  // --- an error path: a weak password ---------------------------------------------
  const weak = await client.POST("/signup", {
    body: { email: `ts-smoke-weak-${tag}@example.com`, password: "short" },
  });
  check(weak.response.status === 422, "signup with a weak password answers 422", weak.response.status);
  if (weak.error === undefined) {
    check(false, "the 422 has a Problem body", weak.data);
  } else {
    const problem: Problem = weak.error;
    check(problem.code === "validation_failed", "the 422 problem code is validation_failed", problem.code);
    const errors = problem.errors ?? [];
    check(errors.length > 0, "the 422 problem has errors", problem);
    check(
      errors.some((e) => e.field === "password"),
      "the 422 errors name the password field",
      errors.map((e) => [e.field, e.code]),
    );
  }

  // --- the cookie transport, as a browser app uses it ----------------------------
  // (A browser keeps and sends the cookie itself; here the smoke carries it by hand.)
  const ck = await client.POST("/signup", {
    body: { email: `ts-smoke-cookie-${tag}@example.com`, password, refresh_token_transport: "cookie" },
  });
  check(ck.response.status === 201, "signup with the cookie transport answers 201", ck.response.status);
  check(ck.data?.refresh_token === null, "with the cookie transport refresh_token is null", ck.data?.refresh_token);
  const setCookie = ck.response.headers.get("set-cookie") ?? "";
  check(
    /^__Host-latchkey_refresh=[A-Za-z0-9_-]{43,};/.test(setCookie) && /HttpOnly/.test(setCookie),
    "signup sets the __Host-latchkey_refresh cookie",
    setCookie,
  );
  const cookie = setCookie.split(";")[0] ?? "";
  const rc = await client.POST("/refresh", { body: {}, headers: { Cookie: cookie } });
  check(rc.response.status === 200, "POST /refresh with only the cookie answers 200", rc.error);
  check(rc.data?.refresh_token === null, "POST /refresh with the cookie keeps refresh_token null", rc.data?.refresh_token);
  const rotatedCookie = (rc.response.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
  check(
    rotatedCookie.startsWith("__Host-latchkey_refresh=") && rotatedCookie !== cookie,
    "POST /refresh with the cookie sets the next cookie",
    rotatedCookie,
  );

  // --- recovery: forgot -> reset with the mailed code -> the new password ------------
  const li = await client.POST("/login", { body: { email, password } });
  check(li.response.status === 200, "login with the password answers 200", li.error);
  if (li.data === undefined) {
    check(false, "login has a TokenResponse body", li.error);
    return;
  }
  const beforeReset: TokenResponse = li.data;
  check(beforeReset.user.id === user.id, "login is for the signup's user", beforeReset.user.id);

  const codesBefore = serverLog === undefined ? 0 : mailedCodes(serverLog, email).length;
  const fp = await client.POST("/password/forgot", { body: { email } });
  check(fp.response.status === 202, "POST /password/forgot answers 202", fp.error);
  const accepted: MailAccepted | undefined = fp.data;
  check(accepted?.status === "sent_if_registered", "POST /password/forgot status is sent_if_registered", accepted);
  const fu = await client.POST("/password/forgot", { body: { email: `ts-smoke-nobody-${tag}@example.com` } });
  check(fu.response.status === 202, "POST /password/forgot for an unknown email answers 202", fu.error);
  check(
    fu.data !== undefined && JSON.stringify(fu.data) === JSON.stringify(accepted),
    "POST /password/forgot for an unknown email has the same body",
    fu.data,
  );

  const newPassword = `ts smoke new ${crypto.randomUUID()}`;
  const resetCode = await waitForCode(serverLog, email, codesBefore, "forgot password mailed a reset code");
  if (resetCode === undefined) return;
  const rw = await client.POST("/password/reset", { body: { email, code: wrongCode(resetCode), new_password: newPassword } });
  isProblem(rw, 400, "invalid_code", "POST /password/reset with a wrong code");
  const rs = await client.POST("/password/reset", { body: { email, code: resetCode, new_password: "short" } });
  const short = isProblem(rs, 422, "validation_failed", "POST /password/reset with a short password");
  if (short !== undefined) {
    const errors = short.errors ?? [];
    check(
      errors.some((e) => e.field === "new_password"),
      "the 422 errors name the new_password field",
      errors.map((e) => [e.field, e.code]),
    );
  }
  const r = await client.POST("/password/reset", { body: { email, code: resetCode, new_password: newPassword } });
  check(r.response.status === 204, "POST /password/reset with the mailed code answers 204", r.error);

  const old = await client.GET("/me", bearer(beforeReset.access_token));
  isProblem(old, 401, "invalid_token", "GET /me with the token from before the reset");
  const lo2 = await client.POST("/login", { body: { email, password } });
  isProblem(lo2, 401, "invalid_credentials", "login with the old password");
  const ln = await client.POST("/login", { body: { email, password: newPassword } });
  check(ln.response.status === 200, "login with the new password answers 200", ln.error);
  if (ln.data === undefined) {
    check(false, "login has a TokenResponse body", ln.error);
    return;
  }
  const afterReset: TokenResponse = ln.data;
  check(afterReset.user.id === user.id, "login with the new password is for the same user", afterReset.user.id);

  // --- change the email: a code to the new address, verified --------------------------
  const newEmail = `ts-smoke-moved-${tag}@example.com`;
  const ce = await client.POST("/me/email", {
    body: { new_email: newEmail, password: newPassword },
    ...bearer(afterReset.access_token),
  });
  check(ce.response.status === 202, "POST /me/email answers 202", ce.error);
  check(ce.data?.status === "sent", "POST /me/email status is sent", ce.data);
  const changeCode = await waitForCode(serverLog, newEmail, 0, "the email change mailed a code to the new address");
  if (changeCode !== undefined) {
    const vc = await client.POST("/email/verify", { body: { email: newEmail, code: changeCode } });
    check(vc.response.status === 200, "POST /email/verify for the new email answers 200", vc.error);
    if (vc.data === undefined) {
      check(false, "POST /email/verify for the new email has a User body", vc.error);
    } else {
      const moved: User = vc.data;
      check(moved.email === newEmail, "the account now has the new email", moved.email);
      check(moved.email_verified === true, "the new email is verified", moved.email_verified);
      check(moved.id === user.id, "the new email is the same account's", moved.id);
    }
  }
}

// The second factor: sign up; enrol TOTP (secret, otpauth URI, QR) and confirm it with the
// current code (10 recovery codes); GET /me says mfa [totp]; a login answers 403 mfa_required
// with an mfa_token; /login/mfa refuses the code used at confirm (a replay) and takes the next
// step's (amr [pwd, otp]); a second login: a wrong code 400, then a recovery code 200 (its
// mfa_token then used up: 401); disable with the password and an unused recovery code (204);
// GET /me says mfa []; a login answers tokens directly again.
// Returns early where a failure leaves nothing to go on (the failure is counted).
async function mfaFlow(baseUrl: string): Promise<void> {
  // The maths first, against RFC 6238's SHA-1 vectors (ASCII key "12345678901234567890",
  // 8 digits) and RFC 4226's 6-digit HOTP vector for counter 0: a wrong function would
  // otherwise show up only as refused codes.
  const rfcKey = Buffer.from("12345678901234567890", "ascii");
  check(totp(rfcKey, totpStep(59), 8) === "94287082", "TOTP: RFC 6238 vector T=59", totp(rfcKey, totpStep(59), 8));
  check(
    totp(rfcKey, totpStep(1111111109), 8) === "07081804",
    "TOTP: RFC 6238 vector T=1111111109",
    totp(rfcKey, totpStep(1111111109), 8),
  );
  check(hotp(rfcKey, 0) === "755224", "TOTP: RFC 4226 6-digit vector, counter 0", hotp(rfcKey, 0));
  check(sameJson([...base32Secret("GEZDGNBVGY3TQOJQ")], [...Buffer.from("1234567890")]), "TOTP: base32 decodes RFC 4648 text");

  const client = createClient<paths>({ baseUrl });
  const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });
  const tag = Math.random().toString(36).slice(2, 14).padEnd(12, "0");
  const email = `ts-smoke-mfa-${tag}@example.com`;
  const password = `ts smoke mfa ${crypto.randomUUID()}`;

  const su = await client.POST("/signup", { body: { email, password } });
  check(su.response.status === 201, "MFA: signup answers 201", su.response.status);
  if (su.data === undefined) {
    check(false, "MFA: signup has a TokenResponse body", su.error);
    return;
  }
  const signedUp: TokenResponse = su.data;
  check(sameJson(signedUp.user.mfa, []), "MFA: a new account has mfa []", signedUp.user.mfa);
  check(sameJson(amrOf(signedUp.access_token), ["pwd"]), "MFA: the signup's access token has amr [pwd]", amrOf(signedUp.access_token));
  const userId = signedUp.user.id;
  const first = bearer(signedUp.access_token);

  // --- enrol: a secret for an authenticator app ------------------------------------
  const en = await client.POST("/me/mfa/totp", { body: { password }, ...first });
  check(en.response.status === 200, "POST /me/mfa/totp answers 200", en.error);
  check(
    en.response.headers.get("cache-control") === "no-store",
    "POST /me/mfa/totp has Cache-Control: no-store",
    en.response.headers.get("cache-control"),
  );
  if (en.data === undefined) {
    check(false, "POST /me/mfa/totp has a TotpEnrolment body", en.error);
    return;
  }
  const enrolment: TotpEnrolment = en.data;
  let key: Buffer;
  try {
    key = base32Secret(enrolment.secret);
  } catch (err) {
    check(false, "the TOTP secret is base32", String(err));
    return;
  }
  check(key.length >= 16, "the TOTP secret has at least 128 bits", key.length * 8);
  const uri = new URL(enrolment.otpauth_uri);
  check(uri.protocol === "otpauth:" && uri.host === "totp", "the otpauth_uri is otpauth://totp/", enrolment.otpauth_uri.slice(0, 30));
  check(uri.searchParams.get("secret") === enrolment.secret, "the otpauth_uri holds the secret");
  check(
    (uri.searchParams.get("digits") ?? "6") === "6" &&
      (uri.searchParams.get("period") ?? "30") === "30" &&
      (uri.searchParams.get("algorithm") ?? "SHA1") === "SHA1",
    "the otpauth_uri says SHA-1, 6 digits, 30 s (or leaves them to their defaults)",
    [...uri.searchParams.keys()],
  );
  check(enrolment.qr_svg.includes("<svg"), "qr_svg is an SVG document", enrolment.qr_svg.slice(0, 60));

  // --- confirm with the current code: the recovery codes ----------------------------
  const confirmStep = totpStep();
  const cf = await client.POST("/me/mfa/totp/confirm", { body: { code: totp(key, confirmStep) }, ...first });
  check(cf.response.status === 200, "POST /me/mfa/totp/confirm with the current code answers 200", cf.error);
  check(
    cf.response.headers.get("cache-control") === "no-store",
    "POST /me/mfa/totp/confirm has Cache-Control: no-store",
    cf.response.headers.get("cache-control"),
  );
  if (cf.data === undefined) {
    check(false, "POST /me/mfa/totp/confirm has a RecoveryCodes body", cf.error);
    return;
  }
  // `string[]`: the schema's minItems/maxItems 10 make no tuple type.
  const recovery: RecoveryCodes = cf.data;
  const codes = recovery.recovery_codes;
  check(codes.length === 10, "confirm answers 10 recovery codes", codes.length);
  check(new Set(codes).size === codes.length, "the recovery codes are all different");
  check(codes.every((c) => /^[0-9A-Z]{5}-[0-9A-Z]{5}$/.test(c)), "the recovery codes look like XXXXX-XXXXX", codes.slice(0, 2));
  const [firstCode, secondCode] = codes;
  if (firstCode === undefined || secondCode === undefined) return;

  const me = await client.GET("/me", first);
  check(me.response.status === 200, "MFA: GET /me answers 200", me.error);
  const mfaOn: User["mfa"] | undefined = me.data?.mfa;
  check(sameJson(mfaOn, ["totp"]), 'GET /me says mfa ["totp"] once confirmed', mfaOn);

  // --- a login now owes a second factor ----------------------------------------------
  const l1 = await client.POST("/login", { body: { email, password } });
  const required = isProblem(l1, 403, "mfa_required", "login to an account with TOTP");
  // Problem.mfa_token is optional in the schema (it is there only with mfa_required), so the
  // generated type is `string | undefined`.
  const mfaToken = required?.mfa_token;
  if (!check(mfaToken !== undefined && mfaToken.length >= 32, "the mfa_required problem has an mfa_token", mfaToken)) return;
  if (mfaToken === undefined) return;
  check(required?.status === 403, "the mfa_required problem status is 403", required?.status);

  // The code of the step used at confirm is a replay: refused (it counts as one wrong code
  // against this mfa_token, which allows five).
  const rp = await client.POST("/login/mfa", { body: { mfa_token: mfaToken, code: totp(key, confirmStep) } });
  isProblem(rp, 400, "invalid_mfa_code", "POST /login/mfa with the code already used at confirm");
  // The next step's code: the current one by now, or one step ahead (drift is accepted).
  // No `refresh_token_transport: null`, which the types allow: the server answers it 400
  // malformed_request; left out it is `body`.
  const m1 = await client.POST("/login/mfa", { body: { mfa_token: mfaToken, code: totp(key, confirmStep + 1) } });
  check(m1.response.status === 200, "POST /login/mfa with the next step's code answers 200", m1.error);
  check(
    m1.response.headers.get("cache-control") === "no-store",
    "POST /login/mfa has Cache-Control: no-store",
    m1.response.headers.get("cache-control"),
  );
  if (m1.data === undefined) {
    check(false, "POST /login/mfa has a TokenResponse body", m1.error);
    return;
  }
  const withCode: TokenResponse = m1.data;
  check(withCode.user.id === userId, "POST /login/mfa is for the account", withCode.user.id);
  check(sameJson(withCode.user.mfa, ["totp"]), "POST /login/mfa user.mfa is [totp]", withCode.user.mfa);
  check(typeof withCode.refresh_token === "string", "POST /login/mfa has the refresh_token in the body", withCode.refresh_token);
  const amr = amrOf(withCode.access_token);
  check(sameJson(amr, ["pwd", "otp"]), "the access token of POST /login/mfa has amr [pwd, otp]", amr);
  const second = bearer(withCode.access_token);
  const me2 = await client.GET("/me", second);
  check(me2.response.status === 200, "GET /me with the token of POST /login/mfa answers 200", me2.error);

  // --- a second login: a wrong code, then a recovery code ------------------------------
  const l2 = await client.POST("/login", { body: { email, password } });
  const token2 = isProblem(l2, 403, "mfa_required", "second login to the account")?.mfa_token;
  if (!check(token2 !== undefined && token2 !== mfaToken, "the second login has a new mfa_token", token2)) return;
  if (token2 === undefined) return;
  const wc = await client.POST("/login/mfa", { body: { mfa_token: token2, code: wrongTotp(key) } });
  isProblem(wc, 400, "invalid_mfa_code", "POST /login/mfa with a wrong code");
  const m2 = await client.POST("/login/mfa", { body: { mfa_token: token2, recovery_code: firstCode } });
  check(m2.response.status === 200, "POST /login/mfa with a recovery code answers 200", m2.error);
  if (m2.data === undefined) {
    check(false, "POST /login/mfa with a recovery code has a TokenResponse body", m2.error);
  } else {
    check(m2.data.user.id === userId, "the recovery code logs in to the account", m2.data.user.id);
    const amr2 = amrOf(m2.data.access_token);
    check(sameJson(amr2, ["pwd", "otp"]), "the access token of a recovery-code login has amr [pwd, otp]", amr2);
  }
  // A challenge is single use: its token is spent once it has logged in (refused before any
  // code is checked, so nothing is counted).
  const spent = await client.POST("/login/mfa", { body: { mfa_token: token2, recovery_code: secondCode } });
  isProblem(spent, 401, "invalid_mfa_token", "POST /login/mfa with an mfa_token already used");

  // --- disable with the password and an unused recovery code ---------------------------
  const d = await client.DELETE("/me/mfa/totp", { body: { password, code: secondCode }, ...second });
  check(d.response.status === 204, "DELETE /me/mfa/totp with a recovery code answers 204", d.error);
  const me3 = await client.GET("/me", second);
  check(me3.response.status === 200, "GET /me after disabling answers 200", me3.error);
  check(sameJson(me3.data?.mfa, []), "GET /me says mfa [] once disabled", me3.data?.mfa);
  const l3 = await client.POST("/login", { body: { email, password } });
  check(l3.response.status === 200, "login once TOTP is off answers 200", l3.error);
  if (l3.data === undefined) {
    check(false, "login once TOTP is off answers tokens directly", l3.error);
  } else {
    check(true, "login once TOTP is off answers tokens directly");
    check(sameJson(l3.data.user.mfa, []), "its user.mfa is []", l3.data.user.mfa);
    check(sameJson(amrOf(l3.data.access_token), ["pwd"]), "its access token has amr [pwd]", amrOf(l3.data.access_token));
  }
}

// Passkeys, with the software passkey above: an account signs up with a password, adds a
// passkey (start -> finish 201), lists it, renames it, logs out, and logs in with it naming no
// account (amr [hwk]); the same answer again is refused (400 invalid_ceremony), and so is one
// signed for another origin (401 invalid_credentials); the passkey is removed (204) and logs
// in no more. A second account signs up with a passkey alone (201, amr [hwk]): its only
// passkey cannot be removed (409 last_credential), and no password logs in to it (401).
// Returns early where a failure leaves nothing to go on (the failure is counted).
async function passkeyFlow(baseUrl: string): Promise<void> {
  const client = createClient<paths>({ baseUrl });
  const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });
  // The origin the browser would report: the server's public URL (.ci/clients.sh sets it to
  // http://localhost:<port>; the server's default is http://localhost:8080). Its host is the
  // RP id; an IP address there turns passkeys off.
  const origin = new URL(process.env["LATCHKEY_PUBLIC_URL"] || "http://localhost:8080").origin;
  const rpId = new URL(origin).hostname;
  const tag = Math.random().toString(36).slice(2, 14).padEnd(12, "0");
  const email = `ts-smoke-pk-${tag}@example.com`;
  const password = `ts smoke passkey ${crypto.randomUUID()}`;

  const su = await client.POST("/signup", { body: { email, password } });
  check(su.response.status === 201, "passkeys: signup answers 201", su.error);
  if (su.data === undefined) return;
  const userId = su.data.user.id;
  const first = bearer(su.data.access_token);

  // --- register ---------------------------------------------------------------------
  const rs = await client.POST("/me/passkeys/register/start", first);
  check(rs.response.status === 200, "POST /me/passkeys/register/start answers 200", rs.error);
  if (rs.data === undefined) return;
  const creation = creationOptions(rs.data);
  check(creation.rp?.id === rpId, `the creation options' rp.id is ${rpId}`, creation.rp);
  check(
    creation.authenticatorSelection?.residentKey === "required" &&
      creation.authenticatorSelection.userVerification === "required",
    "the creation options require a discoverable credential that verifies its user",
    creation.authenticatorSelection,
  );
  check(typeof creation.challenge === "string" && typeof creation.user?.id === "string", "the creation options have a challenge and a user id");
  const authenticator = new SoftPasskey(origin);
  const rf = await client.POST("/me/passkeys/register/finish", {
    body: { ceremony_id: rs.data.ceremony_id, credential: asRegistration(authenticator.register(creation)), name: "TS smoke key" },
    ...first,
  });
  check(rf.response.status === 201, "POST /me/passkeys/register/finish answers 201", rf.error);
  if (rf.data === undefined) return;
  const added: Passkey = rf.data;
  check(UUID.test(added.id), "the passkey id is a UUID", added.id);
  check(added.name === "TS smoke key", "the passkey has the name given", added.name);
  check(isTimestamp(added.created_at) && added.last_used_at === null, "a new passkey has created_at and no last_used_at", added);

  const ls = await client.GET("/me/passkeys", first);
  check(ls.response.status === 200, "GET /me/passkeys answers 200", ls.error);
  check(sameJson(ls.data?.map((p) => p.id), [added.id]), "GET /me/passkeys lists the passkey", ls.data);

  const path = { params: { path: { id: added.id } } };
  const rn = await client.PATCH("/me/passkeys/{id}", { ...path, body: { name: "TS smoke key, renamed" }, ...first });
  check(rn.response.status === 200, "PATCH /me/passkeys/{id} answers 200", rn.error);
  check(rn.data?.name === "TS smoke key, renamed" && rn.data.id === added.id, "the passkey is renamed", rn.data);

  const lo = await client.POST("/logout", first);
  check(lo.response.status === 204, "passkeys: POST /logout answers 204", lo.error);

  // --- log in with it, naming no account ------------------------------------------------
  const ls1 = await client.POST("/login/passkey/start");
  check(ls1.response.status === 200, "POST /login/passkey/start answers 200", ls1.error);
  if (ls1.data === undefined) return;
  const request = requestOptions(ls1.data);
  check(request.rpId === rpId, `the request options' rpId is ${rpId}`, request.rpId);
  check((request.allowCredentials ?? []).length === 0, "the request options list no credentials (a discoverable login)", request.allowCredentials);
  const answer = asCredential(authenticator.login(request));
  const lf = await client.POST("/login/passkey/finish", { body: { ceremony_id: ls1.data.ceremony_id, credential: answer } });
  check(lf.response.status === 200, "POST /login/passkey/finish answers 200", lf.error);
  if (lf.data === undefined) return;
  const tokens: TokenResponse = lf.data;
  check(tokens.user.id === userId, "the passkey logs in to its account", tokens.user.id);
  check(sameJson(amrOf(tokens.access_token), ["hwk"]), "the passkey login's access token has amr [hwk]", amrOf(tokens.access_token));
  check(typeof tokens.refresh_token === "string", "the passkey login has the refresh_token in the body", tokens.refresh_token);
  const second = bearer(tokens.access_token);
  const used = await client.GET("/me/passkeys", second);
  check(used.data?.[0]?.last_used_at != null, "the passkey's last_used_at is set by the login", used.data);

  // --- attacks: the same answer again; an answer signed for another origin --------------
  const replay = await client.POST("/login/passkey/finish", { body: { ceremony_id: ls1.data.ceremony_id, credential: answer } });
  isProblem(replay, 400, "invalid_ceremony", "a replayed passkey login answer");
  const ls2 = await client.POST("/login/passkey/start");
  if (ls2.data === undefined) {
    check(false, "a second POST /login/passkey/start answers a ceremony", ls2.error);
  } else {
    const phished = asCredential(authenticator.login(requestOptions(ls2.data), "https://latchkey.example.net"));
    const pf = await client.POST("/login/passkey/finish", { body: { ceremony_id: ls2.data.ceremony_id, credential: phished } });
    isProblem(pf, 401, "invalid_credentials", "a passkey login answer signed for another origin");
  }

  // --- remove it: it logs in no more ----------------------------------------------------
  const rm = await client.DELETE("/me/passkeys/{id}", { ...path, ...second });
  check(rm.response.status === 204, "DELETE /me/passkeys/{id} answers 204", rm.error);
  const none = await client.GET("/me/passkeys", second);
  check(sameJson(none.data, []), "GET /me/passkeys is empty once it is removed", none.data);
  const ls3 = await client.POST("/login/passkey/start");
  if (ls3.data !== undefined) {
    const gone = await client.POST("/login/passkey/finish", {
      body: { ceremony_id: ls3.data.ceremony_id, credential: asCredential(authenticator.login(requestOptions(ls3.data))) },
    });
    isProblem(gone, 401, "invalid_credentials", "a passkey login with the removed passkey");
  }

  // --- an account with a passkey and no password ---------------------------------------
  const onlyEmail = `ts-smoke-pk-only-${tag}@example.com`;
  const ss = await client.POST("/signup/passkey/start", { body: { email: onlyEmail, username: `tspk_${tag}` } });
  check(ss.response.status === 200, "POST /signup/passkey/start answers 200", ss.error);
  if (ss.data === undefined) return;
  const onlyKey = new SoftPasskey(origin);
  const sf = await client.POST("/signup/passkey/finish", {
    body: { ceremony_id: ss.data.ceremony_id, credential: asRegistration(onlyKey.register(creationOptions(ss.data))), name: "TS phone" },
  });
  check(sf.response.status === 201, "POST /signup/passkey/finish answers 201", sf.error);
  if (sf.data === undefined) return;
  check(sf.data.user.email === onlyEmail, "the passkey signup's account has the email", sf.data.user.email);
  check(sameJson(amrOf(sf.data.access_token), ["hwk"]), "the passkey signup's access token has amr [hwk]", amrOf(sf.data.access_token));
  const onlySession = bearer(sf.data.access_token);
  const only = await client.GET("/me/passkeys", onlySession);
  const onlyId = only.data?.[0]?.id;
  check(only.data?.length === 1 && only.data[0]?.name === "TS phone", "the passkey signup's account lists its passkey", only.data);
  if (onlyId !== undefined) {
    const last = await client.DELETE("/me/passkeys/{id}", { params: { path: { id: onlyId } }, ...onlySession });
    isProblem(last, 409, "last_credential", "removing the only passkey of an account without a password");
  }
  const pw = await client.POST("/login", { body: { email: onlyEmail, password } });
  isProblem(pw, 401, "invalid_credentials", "a password login to an account without a password");
}

// Never called: each line must fail to type-check, which proves that the calls above are
// checked against the generated types rather than against `any`.
export function generatedTypesAreEnforced(client: ReturnType<typeof createClient<paths>>): void {
  // @ts-expect-error signup requires a password
  void client.POST("/signup", { body: { email: "a@example.com" } });
  // @ts-expect-error refresh_token must be a string
  void client.POST("/refresh", { body: { refresh_token: 42 } });
  // @ts-expect-error the logout scope is an enum
  void client.POST("/logout", { body: { scope: "everywhere" } });
  // @ts-expect-error verifying an email needs the code
  void client.POST("/email/verify", { body: { email: "a@example.com" } });
  // @ts-expect-error a reset needs the new password
  void client.POST("/password/reset", { body: { email: "a@example.com", code: "7KQ2M9XD" } });
  // @ts-expect-error changing the email needs the password
  void client.POST("/me/email", { body: { new_email: "b@example.com" } });
  // @ts-expect-error enrolling TOTP needs the password
  void client.POST("/me/mfa/totp", { body: {} });
  // @ts-expect-error confirming TOTP needs the code
  void client.POST("/me/mfa/totp/confirm", { body: {} });
  // @ts-expect-error disabling TOTP needs a code besides the password
  void client.DELETE("/me/mfa/totp", { body: { password: "correct horse battery staple" } });
  // @ts-expect-error the second step of a login needs the mfa_token
  void client.POST("/login/mfa", { body: { code: "123456" } });
  // @ts-expect-error finishing a passkey registration needs the ceremony_id
  void client.POST("/me/passkeys/register/finish", { body: { credential: {} } });
  // @ts-expect-error renaming a passkey needs a name
  void client.PATCH("/me/passkeys/{id}", { params: { path: { id: "01936f7e-0000-7000-8000-000000000000" } }, body: {} });
  // @ts-expect-error there is no such path
  void client.GET("/no-such-path");
  const user = {} as User;
  // @ts-expect-error username may be null
  const name: string = user.username;
  void name;
  // @ts-expect-error mfa lists only the kinds of factor the server has
  const factors: User["mfa"] = ["sms"];
  void factors;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error("typescript client smoke crashed:", err);
    process.exit(1);
  },
);
