// Drive a live Latchkey through openapi-fetch over the types that openapi-typescript
// generates from openapi.yaml: signup -> me -> refresh -> sessions -> logout -> me (401),
// plus one 422 and the refresh token in a cookie (signup, then refresh with only the cookie).
// Usage: tsx smoke.ts [BASE_URL]   (default: $LATCHKEY_URL)
//
// `npm run generate` writes generated/schema.d.ts (git-ignored); `npm run typecheck`
// (tsc --noEmit, strict) proves that the calls below match the generated types.
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema";

type User = components["schemas"]["User"];
type TokenResponse = components["schemas"]["TokenResponse"];
type Session = components["schemas"]["Session"];
type Problem = components["schemas"]["Problem"];

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

  const client = createClient<paths>({ baseUrl });
  const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });

  const tag = Math.random().toString(36).slice(2, 14).padEnd(12, "0");
  const email = `ts-smoke-${tag}@example.com`;
  const username = `ts_${tag}`;
  const password = `ts smoke ${crypto.randomUUID()}`;

  // --- signup ---------------------------------------------------------------------
  const su = await client.POST("/signup", {
    body: { email: email.toUpperCase(), password, username },
  });
  check(su.response.status === 201, "signup answers 201", su.response.status);
  if (su.data === undefined) {
    check(false, "signup has a TokenResponse body", su.error);
    return summary(started);
  }
  const tokens: TokenResponse = su.data;
  check(tokens.token_type === "Bearer", "signup token_type is Bearer", tokens.token_type);
  check(Number.isInteger(tokens.expires_in) && tokens.expires_in > 0, "signup expires_in is a positive integer", tokens.expires_in);
  check(tokens.access_token.split(".").length === 3, "signup access_token is a JWT");
  // `null` only with the cookie transport (below); the default is the body.
  const refreshToken = tokens.refresh_token;
  if (refreshToken === null) {
    check(false, "signup has the refresh_token in the body", tokens);
    return summary(started);
  }
  check(refreshToken.length >= 43, "signup refresh_token is long enough", refreshToken.length);
  const user: User = tokens.user;
  check(user.email === email, "signup user.email is the email, lowercased", user.email);
  check(user.username === username, "signup user.username is the username", user.username);
  check(UUID.test(user.id), "signup user.id is a lowercase UUID", user.id);
  check(isTimestamp(user.created_at), "signup user.created_at is RFC 3339", user.created_at);
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
  }

  // --- refresh --------------------------------------------------------------------
  const rf = await client.POST("/refresh", { body: { refresh_token: refreshToken } });
  check(rf.response.status === 200, "POST /refresh answers 200", rf.response.status);
  if (rf.data === undefined) {
    check(false, "POST /refresh has a TokenResponse body", rf.error);
    return summary(started);
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

  return summary(started);
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
