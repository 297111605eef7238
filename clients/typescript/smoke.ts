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
//     (200, the account has the new email).
// Usage: tsx smoke.ts [BASE_URL]   (default: $LATCHKEY_URL)
//
// The codes are read from the server's log ($LATCHKEY_SERVER_LOG): without LATCHKEY_SMTP_URL,
// a server run with LATCHKEY_LOG=info logs each message it would send, with its recipient and
// text (where a code stands on a line `Your code: XXXXXXXX`). .ci/clients.sh runs it so.
//
// `npm run generate` writes generated/schema.d.ts (git-ignored); `npm run typecheck`
// (tsc --noEmit, strict) proves that the calls below match the generated types.
import { readFileSync } from "node:fs";
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema";

type User = components["schemas"]["User"];
type TokenResponse = components["schemas"]["TokenResponse"];
type Session = components["schemas"]["Session"];
type Problem = components["schemas"]["Problem"];
type MailAccepted = components["schemas"]["MailAccepted"];

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
  // @ts-expect-error there is no such path
  void client.GET("/no-such-path");
  const user = {} as User;
  // @ts-expect-error username may be null
  const name: string = user.username;
  void name;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error("typescript client smoke crashed:", err);
    process.exit(1);
  },
);
