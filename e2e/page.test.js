// Latchkey's page (GET /) in a real browser: Debian's Chromium, headless, driven by
// playwright-core, with node's own test runner. .ci/e2e.sh starts the server (with a short
// LATCHKEY_ACCESS_TTL, so that refreshes happen within a test) and runs this file:
//
//   LATCHKEY_URL=http://127.0.0.1:8080 ACCESS_TTL=2 node --test page.test.js
//
// Each test uses fresh browser contexts (a context is one browser profile: its own cookie
// jar) and fresh accounts. Screenshots of the main states go to E2E_SCREENSHOTS.

import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { chromium } from "playwright-core";

const BASE = process.env.LATCHKEY_URL ?? "http://127.0.0.1:8080";
const ACCESS_TTL = Number(process.env.ACCESS_TTL ?? 2);
/** How long past its expiry the service still accepts an access token (src/auth/tokens.rs). */
const LEEWAY = 5;
const SHOTS = process.env.E2E_SCREENSHOTS ?? path.resolve(import.meta.dirname, "../target/e2e");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const PASSWORD = "correct horse battery staple";
const COOKIE = "__Host-latchkey_refresh";
/** The longest any single wait may take; a test as a whole gets TEST_TIMEOUT. */
const STEP_TIMEOUT = 10_000;
const TEST_TIMEOUT = 60_000;

let browser;

before(async () => {
  await mkdir(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in CI: Chromium's sandbox needs user namespaces that a container may not grant.
    args: ["--no-sandbox"],
    timeout: STEP_TIMEOUT,
  });
});

after(async () => {
  await browser?.close();
});

// --- helpers -----------------------------------------------------------------------------

let counter = 0;
function uniqueEmail() {
  counter += 1;
  return `e2e-${Date.now().toString(36)}-${process.pid}-${counter}@example.com`;
}

/**
 * A fresh browser profile. With `frozen`, the page's clock is Playwright's fake one, paused:
 * its timers (the proactive refresh) fire only when a test moves the clock on.
 */
async function newContext({ frozen = false, ...options } = {}) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 }, ...options });
  context.setDefaultTimeout(STEP_TIMEOUT);
  if (frozen) {
    await context.clock.install();
    await context.clock.pauseAt(Date.now() + 1_000);
  }
  return context;
}

/**
 * Every page records what must never happen: an uncaught error, or anything the
 * Content-Security-Policy (or Trusted Types) refused. Tests assert the list is empty.
 */
const incidents = [];
function watch(page) {
  page.on("pageerror", (error) => incidents.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    const text = message.text();
    if (/Content Security Policy|Trusted Type|TrustedHTML/i.test(text)) {
      incidents.push(`refused by the policy: ${text}`);
    }
  });
  return page;
}

function assertNoIncidents() {
  assert.deepEqual(incidents.splice(0), []);
}

/** Opens the page and waits until it has decided whether someone is logged in. */
async function open(context, url = `${BASE}/`) {
  const page = watch(await context.newPage());
  await page.goto(url);
  await settled(page);
  return page;
}

async function settled(page) {
  await page.waitForSelector("#signed-in:not([hidden]), #signed-out:not([hidden])");
}

async function signUp(page, email, { username } = {}) {
  await page.getByLabel("Email", { exact: true }).fill(email);
  if (username) await page.getByLabel("Username (optional)").fill(username);
  await page.locator("#signup-password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expectLoggedIn(page, email);
}

async function logIn(page, identifier) {
  await page.getByLabel("Email or username").fill(identifier);
  await page.locator("#login-password").fill(PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
}

/** The account card shows this email (from GET /me) and the session list has loaded. */
async function expectLoggedIn(page, email) {
  await page.waitForSelector("#signed-in:not([hidden])");
  await page.waitForFunction(
    (expected) => document.querySelector("#me-email")?.textContent === expected,
    email,
  );
  await page.waitForSelector("#sessions li");
}

async function expectLoggedOut(page) {
  await page.waitForSelector("#signed-out:not([hidden])");
  assert.equal(await page.locator("#signed-in").isHidden(), true);
}

async function refreshCookie(context) {
  return (await context.cookies(BASE)).find((cookie) => cookie.name === COOKIE);
}

async function shoot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Runs `body` with its contexts closed afterwards, whatever happens. */
function scenario(name, body) {
  test(name, { timeout: TEST_TIMEOUT }, async () => {
    const contexts = [];
    const make = async (options) => {
      const context = await newContext(options);
      contexts.push(context);
      return context;
    };
    try {
      await body(make);
      assertNoIncidents();
    } finally {
      incidents.length = 0;
      await Promise.all(contexts.map((context) => context.close()));
    }
  });
}

// --- the tests ---------------------------------------------------------------------------

scenario("signing up shows the email and the session, with the refresh token out of reach", async (newContext) => {
  const context = await newContext();
  const page = await open(context);
  await expectLoggedOut(page);
  await shoot(page, "signed-out");

  const email = uniqueEmail();
  await signUp(page, email, { username: `e2e_${Date.now().toString(36)}` });
  assert.match(await page.locator("#status").textContent(), /logged in/);

  const sessions = page.locator("#sessions li");
  assert.equal(await sessions.count(), 1);
  assert.equal(await sessions.first().locator(".badge").isVisible(), true, "marked as this device");
  assert.match(await sessions.first().locator(".session-meta").textContent(), /127\.0\.0\.1/);
  assert.match(await sessions.first().locator(".session-agent").textContent(), /Chrome/);

  // The refresh token is in an HttpOnly, Secure, SameSite=Strict __Host- cookie: the page's
  // script cannot read it, and nothing is kept in web storage.
  const cookie = await refreshCookie(context);
  assert.ok(cookie, "the refresh cookie is set");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.secure, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.equal(cookie.path, "/");
  const visible = await page.evaluate(() => ({
    cookie: document.cookie,
    local: localStorage.length,
    session: sessionStorage.length,
  }));
  assert.deepEqual(visible, { cookie: "", local: 0, session: 0 });
});

scenario("a reload keeps you logged in, through the cookie", async (newContext) => {
  const context = await newContext();
  const page = await open(context);
  const email = uniqueEmail();
  await signUp(page, email);
  const before = (await refreshCookie(context)).value;

  const refreshed = page.waitForResponse((response) => response.url().endsWith("/refresh"));
  await page.reload();
  assert.equal((await refreshed).status(), 200);
  await expectLoggedIn(page, email);
  assert.notEqual((await refreshCookie(context)).value, before, "the cookie rotated");
});

scenario("at http://localhost, the README's address, the cookie works as well", async (newContext) => {
  const local = new URL(BASE);
  local.hostname = "localhost";
  const context = await newContext();
  const page = await open(context, `${local.origin}/`);
  const email = uniqueEmail();
  await signUp(page, email);
  assert.ok((await context.cookies(local.origin)).some((cookie) => cookie.name === COOKIE));
  await page.reload();
  await expectLoggedIn(page, email);
});

scenario("logging in by username from another device opens a second session", async (newContext) => {
  const first = await open(await newContext());
  const email = uniqueEmail();
  const username = `e2e_${Date.now().toString(36)}`;
  await signUp(first, email, { username });

  const second = await open(await newContext());
  await logIn(second, username);
  await expectLoggedIn(second, email);
  assert.equal(await second.locator("#sessions li").count(), 2);
  assert.equal(await second.locator("#sessions li.current").count(), 1);
});

scenario("two tabs refreshing at the same moment both stay logged in", async (newContext) => {
  const context = await newContext({ frozen: true });
  const email = uniqueEmail();
  const first = await open(context);
  await signUp(first, email);
  const second = await open(context);
  await expectLoggedIn(second, email);

  // Hold every /refresh until both tabs have sent theirs, so that both present the same
  // refresh token: the server must answer both with one successor (converging rotation).
  const held = [];
  let release;
  const bothHeld = new Promise((resolve) => {
    release = resolve;
  });
  await context.route("**/refresh", async (route) => {
    held.push(route);
    if (held.length === 2) release();
    await Promise.race([bothHeld, sleep(STEP_TIMEOUT)]);
    await route.continue();
  });
  const answers = [first, second].map((page) =>
    page.waitForResponse((response) => response.url().endsWith("/refresh")),
  );
  // Both tabs' timers come due together: the page's own proactive refresh, in each.
  await context.clock.runFor(ACCESS_TTL * 1_000);
  const responses = await Promise.all(answers);
  await context.unrouteAll({ behavior: "wait" });
  assert.equal(held.length, 2, "both tabs refreshed");
  assert.deepEqual(
    responses.map((response) => response.status()),
    [200, 200],
  );
  const sent = await Promise.all(
    responses.map(async (response) => {
      const cookies = (await response.request().allHeaders()).cookie ?? "";
      return cookies.split("; ").find((pair) => pair.startsWith(`${COOKIE}=`));
    }),
  );
  assert.ok(sent[0], "the refresh carried the cookie");
  assert.equal(sent[0], sent[1], "both tabs presented the same refresh token");

  // Both still work: their next requests succeed, and so does a later refresh.
  for (const page of [first, second]) {
    await page.getByRole("button", { name: "Reload" }).click();
    await expectLoggedIn(page, email);
    assert.equal(await page.locator("#sessions li").count(), 1);
    assert.equal(await page.locator("#sessions-error").textContent(), "");
  }
  const later = first.waitForResponse((response) => response.url().endsWith("/refresh"));
  await first.reload();
  assert.equal((await later).status(), 200);
  await expectLoggedIn(first, email);
});

scenario("an expired access token is refreshed once for concurrent requests, which then succeed", async (newContext) => {
  const context = await newContext({ frozen: true });
  const page = await open(context);
  const email = uniqueEmail();
  await signUp(page, email);

  // The paused clock keeps the page from refreshing ahead of time; wait out the token.
  await sleep((ACCESS_TTL + LEEWAY) * 1_000 + 1_000);
  const seen = [];
  page.on("response", (response) => {
    const url = new URL(response.url());
    if (["/me", "/sessions", "/refresh"].includes(url.pathname)) {
      seen.push(`${url.pathname} ${response.status()}`);
    }
  });
  // Reload asks for /me and /sessions at once: both get 401, one refresh serves both.
  await page.getByRole("button", { name: "Reload" }).click();
  await page.waitForFunction(() => !document.querySelector("#reload-sessions").disabled);
  await expectLoggedIn(page, email);
  assert.deepEqual(seen.filter((entry) => entry.startsWith("/refresh")), ["/refresh 200"]);
  assert.deepEqual(
    seen.filter((entry) => !entry.startsWith("/refresh")).sort(),
    ["/me 200", "/me 401", "/sessions 200", "/sessions 401"],
  );
});

scenario("ending a session from one device logs that device out on its next request", async (newContext) => {
  const email = uniqueEmail();
  const laptop = await open(await newContext());
  await signUp(laptop, email);
  // The phone's clock is paused, so that its next request is the one this test makes
  // (rather than a proactive refresh of its own, racing the test).
  const phoneContext = await newContext({
    frozen: true,
    viewport: { width: 360, height: 740 },
    isMobile: true,
    hasTouch: true,
  });
  const phone = await open(phoneContext);
  await logIn(phone, email);
  await expectLoggedIn(phone, email);

  await laptop.getByRole("button", { name: "Reload" }).click();
  await laptop.waitForFunction(() => document.querySelectorAll("#sessions li").length === 2);
  await shoot(laptop, "signed-in-with-sessions");
  const other = laptop.locator("#sessions li:not(.current)");
  await other.getByRole("button", { name: /^End session/ }).click();
  await laptop.waitForFunction(() => document.querySelectorAll("#sessions li").length === 1);
  assert.match(await laptop.locator("#status").textContent(), /Session ended/);
  assert.equal(await laptop.locator("#sessions li.current").count(), 1);

  // The phone's next request (reload its account) meets a revoked session: 401, the
  // refresh is refused too, and the page says so.
  await phone.getByRole("button", { name: "Reload" }).click();
  await expectLoggedOut(phone);
  assert.match(await phone.locator("#status").textContent(), /session has ended/i);
  await shoot(phone, "ended-from-another-device-phone");
  // And it stays logged out across a reload.
  await phone.reload();
  await settled(phone);
  await expectLoggedOut(phone);
  // The laptop is unaffected.
  await laptop.reload();
  await expectLoggedIn(laptop, email);
});

scenario("logging out clears the cookie, logs out the other tabs and stays logged out", async (newContext) => {
  // Paused: no proactive refresh of the other tab can cross the logout.
  const context = await newContext({ frozen: true });
  const page = await open(context);
  const email = uniqueEmail();
  await signUp(page, email);
  assert.ok(await refreshCookie(context));
  const otherTab = await open(context);
  await expectLoggedIn(otherTab, email);

  await page.locator("#logout").click();
  await expectLoggedOut(page);
  assert.match(await page.locator("#status").textContent(), /logged out/);
  assert.equal(await refreshCookie(context), undefined, "the refresh cookie is gone");
  assert.equal(
    await page.evaluate(() => document.activeElement?.id),
    "login-heading",
    "focus moves to the login form",
  );
  await shoot(page, "logged-out");
  // The other tab shared the session (one cookie jar): it is told at once.
  await expectLoggedOut(otherTab);
  assert.match(await otherTab.locator("#status").textContent(), /another tab/);

  await page.reload();
  await settled(page);
  await expectLoggedOut(page);
});

scenario("logging out everywhere ends the other devices' sessions too", async (newContext) => {
  const email = uniqueEmail();
  const laptop = await open(await newContext());
  await signUp(laptop, email);
  const desktop = await open(await newContext({ frozen: true }));
  await logIn(desktop, email);
  await expectLoggedIn(desktop, email);

  await laptop.getByRole("button", { name: "Log out everywhere" }).click();
  await expectLoggedOut(laptop);
  assert.match(await laptop.locator("#status").textContent(), /every device/);
  await desktop.getByRole("button", { name: "Reload" }).click();
  await expectLoggedOut(desktop);
});

/** A page on another origin that tries to use the refresh cookie, three ways. */
const ATTACKER_PAGE = `<!doctype html><meta charset="utf-8"><title>elsewhere</title>
<form id="form" method="post" enctype="text/plain"><input name='{"a":"' value='"}'></form>
<script>
  window.attempts = (async (target) => {
    const results = {};
    try {
      const response = await fetch(target + "/refresh", {
        method: "POST", credentials: "include",
        headers: { "Content-Type": "application/json" }, body: "{}",
      });
      results.json = "answered " + response.status;
    } catch (error) {
      results.json = "refused: " + error.name;
    }
    try {
      const response = await fetch(target + "/refresh", {
        method: "POST", credentials: "include", mode: "no-cors",
        headers: { "Content-Type": "text/plain" }, body: "{}",
      });
      results.noCors = response.type;
    } catch (error) {
      results.noCors = "refused: " + error.name;
    }
    return results;
  })(new URLSearchParams(location.search).get("target"));
</script>`;

scenario("a page on another origin cannot use the refresh cookie", async (newContext) => {
  const server = http.createServer((request, response) => {
    response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    response.end(ATTACKER_PAGE);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const port = server.address().port;
    const context = await newContext({ frozen: true });
    const page = await open(context);
    const email = uniqueEmail();
    await signUp(page, email);
    const cookie = (await refreshCookie(context)).value;

    // 127.0.0.1 on another port is another origin of the same site: SameSite lets the
    // cookie go along, and the service's own rules refuse it (403 csrf_rejected). localhost
    // is another site altogether: the browser keeps the cookie back (SameSite=Strict), and
    // without it the text/plain body is simply unsupported (415).
    const origins = [
      { origin: `http://127.0.0.1:${port}`, cookieSent: true, status: 403, code: "csrf_rejected" },
      { origin: `http://localhost:${port}`, cookieSent: false, status: 415, code: "unsupported_media_type" },
    ];
    for (const { origin, cookieSent, status, code } of origins) {
      const attacker = await context.newPage();
      const refreshes = [];
      attacker.on("response", (response) => {
        if (response.url().endsWith("/refresh")) refreshes.push(response.status());
      });
      await attacker.goto(`${origin}/?target=${encodeURIComponent(BASE)}`);
      const results = await attacker.evaluate(() => window.attempts);
      // The JSON fetch needs a CORS preflight, which an unlisted origin fails: the POST is
      // never sent. The no-cors one is sent, and its answer hidden from the page.
      assert.deepEqual(results, { json: "refused: TypeError", noCors: "opaque" }, origin);

      // A cross-origin form post: a navigation, so its answer can be seen here.
      const navigation = attacker.waitForResponse((response) => response.url().endsWith("/refresh"));
      await attacker.evaluate((target) => {
        const form = document.getElementById("form");
        form.action = `${target}/refresh`;
        form.submit();
      }, BASE);
      const answer = await navigation;
      assert.equal(answer.status(), status, origin);
      assert.equal((await answer.json()).code, code, origin);
      const sent = (await answer.request().allHeaders()).cookie ?? "";
      assert.equal(sent.includes(`${COOKIE}=`), cookieSent, `${origin}: ${sent}`);
      // Only the no-cors fetch and the form reached the service, and both were refused.
      assert.deepEqual(refreshes, [status, status], origin);
      assert.equal((await refreshCookie(context)).value, cookie, `${origin}: the cookie changed`);
      await attacker.close();
    }

    // The user is still logged in, with the same cookie.
    await page.getByRole("button", { name: "Reload" }).click();
    await expectLoggedIn(page, email);
    await page.reload();
    await expectLoggedIn(page, email);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

scenario("field errors sit next to their fields, and the keyboard alone logs in", async (newContext) => {
  const page = await open(await newContext());
  await page.getByLabel("Email", { exact: true }).fill("not an address");
  await page.locator("#signup-password").fill("short");
  await page.getByRole("button", { name: "Create account" }).click();
  await page.waitForSelector("#signup-email-error:not(:empty)");
  assert.match(await page.locator("#signup-email-error").textContent(), /valid email/);
  assert.match(await page.locator("#signup-password-error").textContent(), /at least 8/);
  assert.equal(await page.locator("#signup-email").getAttribute("aria-invalid"), "true");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "signup-email");
  // The error is announced with the field: it is part of the input's description.
  const description = await page.locator("#signup-email").getAttribute("aria-describedby");
  assert.ok(description.split(" ").includes("signup-email-error"));
  await shoot(page, "field-errors");

  // An account, then a fresh device logging in with nothing but the keyboard.
  const email = uniqueEmail();
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.locator("#signup-password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expectLoggedIn(page, email);

  const other = await open(await newContext());
  await other.keyboard.press("Tab");
  assert.equal(await other.evaluate(() => document.activeElement?.id), "login-identifier");
  await other.keyboard.type(email);
  await other.keyboard.press("Tab");
  await other.keyboard.type("a wrong password");
  await other.keyboard.press("Enter");
  await other.waitForSelector("#login-error:not(:empty)");
  assert.match(await other.locator("#login-error").textContent(), /do not match/);
  await other.locator("#login-password").fill("");
  await other.locator("#login-password").focus();
  await other.keyboard.type(PASSWORD);
  await other.keyboard.press("Enter");
  await expectLoggedIn(other, email);
  assert.equal(await other.evaluate(() => document.activeElement?.id), "account-heading");
});

scenario("at phone width (360 px) nothing overflows", async (newContext) => {
  const context = await newContext({
    viewport: { width: 360, height: 740 },
    isMobile: true,
    hasTouch: true,
  });
  const page = await open(context);
  const overflow = () =>
    page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(await overflow(), 0, "signed out");
  await shoot(page, "phone-signed-out");
  await signUp(page, uniqueEmail(), { username: `e2e_${Date.now().toString(36)}` });
  assert.equal(await overflow(), 0, "signed in");
  await shoot(page, "phone-signed-in");
});

scenario("the API reference at /docs renders under its own security policy", async (newContext) => {
  const context = await newContext();
  const page = watch(await context.newPage());
  const response = await page.goto(`${BASE}/docs/`);
  assert.match(response.headers()["content-security-policy"], /frame-ancestors 'none'/);
  assert.equal(response.headers()["x-frame-options"], "DENY");
  await page.waitForSelector(".swagger-ui .info .title");
  assert.match(await page.locator(".swagger-ui .info .title").textContent(), /Latchkey/);
  assert.ok((await page.locator(".opblock").count()) > 10, "the operations are listed");
  await shoot(page, "docs");
});
