// Latchkey's page (GET /) in a real browser: Debian's Chromium, headless, driven by
// playwright-core, with node's own test runner. .ci/e2e.sh starts the server (with a short
// LATCHKEY_ACCESS_TTL, so that refreshes happen within a test) and runs this file:
//
//   LATCHKEY_URL=http://localhost:8080 ACCESS_TTL=2 node --test page.test.js
//
// LATCHKEY_URL is where the tests open the page: the server's LATCHKEY_PUBLIC_URL, which its
// mails' links point to and which gives WebAuthn its relying party id (`localhost`: a domain,
// as WebAuthn needs, and a secure context over plain http). The same server under its other
// loopback name (127.0.0.1 for localhost) is another site, for the tests that need one.
//
// Each test uses fresh browser contexts (a context is one browser profile: its own cookie
// jar) and fresh accounts. Screenshots of the main states go to E2E_SCREENSHOTS.
//
// The server's mail comes here over real SMTP: this file runs a sink on SMTP_PORT (the
// server's LATCHKEY_SMTP_URL), and the tests read the codes and links from the mails' text,
// where the code stands on a line `Your code: XXXXXXXX` and the link is the only URL.
//
// Two-factor authentication: this file is the authenticator app. It computes the RFC 6238
// codes itself (node's crypto, checked against the RFC's test vector below), from the key
// the page shows as text. The service takes each code once, so a test that has used the
// current 30-second step's code goes on with the next step's, which the service's one step
// of tolerance accepts at once: no test waits for the clock.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdir } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { simpleParser } from "mailparser";
import { chromium } from "playwright-core";
import { SMTPServer } from "smtp-server";

const BASE = process.env.LATCHKEY_URL ?? "http://localhost:8080";
/** The same server at its other loopback name: another site than BASE's. */
const OTHER_BASE = (() => {
  const url = new URL(BASE);
  url.hostname = url.hostname === "localhost" ? "127.0.0.1" : "localhost";
  return url.origin;
})();
const ACCESS_TTL = Number(process.env.ACCESS_TTL ?? 2);
/** How long past its expiry the service still accepts an access token (src/auth/tokens.rs). */
const LEEWAY = 5;
const SHOTS = process.env.E2E_SCREENSHOTS ?? path.resolve(import.meta.dirname, "../target/e2e");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SMTP_PORT = Number(process.env.SMTP_PORT ?? 2525);
const PASSWORD = "correct horse battery staple";
const NEW_PASSWORD = "a fresh passphrase for e2e";
const COOKIE = "__Host-latchkey_refresh";
/** The longest any single wait may take; a test as a whole gets TEST_TIMEOUT. */
const STEP_TIMEOUT = 10_000;
/** How long a mail may take: the server's worker sends at once, and retries after 2 s, 4 s… */
const MAIL_TIMEOUT = 20_000;
const TEST_TIMEOUT = 60_000;

let browser;

// --- the SMTP sink -----------------------------------------------------------------------

/** Every message received: its envelope recipients, subject and text part. */
const mails = [];
/** Called on each message, by the tests waiting for one. */
const mailListeners = new Set();

const sink = new SMTPServer({
  // Plain SMTP on the loopback, as LATCHKEY_SMTP_URL=smtp://… asks: no TLS, no login.
  disabledCommands: ["STARTTLS", "AUTH"],
  authOptional: true,
  logger: false,
  onData(stream, session, callback) {
    simpleParser(stream).then(
      (parsed) => {
        mails.push({
          to: session.envelope.rcptTo.map((recipient) => recipient.address.toLowerCase()),
          subject: parsed.subject ?? "",
          text: parsed.text ?? "",
        });
        for (const listener of mailListeners) listener();
        callback();
      },
      (error) => callback(error),
    );
  },
});

/**
 * The `nth` (1-based) message to `address` with this subject, once it has arrived.
 */
async function mailTo(address, subject, nth = 1) {
  const find = () =>
    mails.filter((mail) => mail.to.includes(address.toLowerCase()) && mail.subject === subject)[
      nth - 1
    ];
  let listener;
  try {
    const found = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no mail #${nth} "${subject}" to ${address} within ${MAIL_TIMEOUT} ms`)),
        MAIL_TIMEOUT,
      );
      listener = () => {
        const mail = find();
        if (mail) {
          clearTimeout(timer);
          resolve(mail);
        }
      };
      mailListeners.add(listener);
      listener();
    });
    return found;
  } finally {
    mailListeners.delete(listener);
  }
}

/** The code on its line `Your code: XXXXXXXX`. */
function codeIn(mail) {
  const match = /^Your code: (\S+)$/m.exec(mail.text);
  assert.ok(match, `no code in:\n${mail.text}`);
  return match[1];
}

/** The mail's link: its only URL. */
function linkIn(mail) {
  const urls = mail.text.match(/https?:\/\/\S+/g) ?? [];
  assert.equal(urls.length, 1, `one link in:\n${mail.text}`);
  return urls[0];
}

const SUBJECTS = {
  reset: "Reset your Latchkey password",
  changed: "Your Latchkey password was changed",
  verify: "Confirm your email address for Latchkey",
  changing: "Your Latchkey email address is about to change",
};

before(async () => {
  await new Promise((resolve, reject) => {
    sink.once("error", reject);
    sink.listen(SMTP_PORT, "127.0.0.1", resolve);
  });
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
  await new Promise((resolve) => sink.close(resolve));
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

/** Like settled, while a task (a mail's link) keeps both views out of sight. */
async function settledBehindTask(page) {
  await page.waitForSelector("#signed-in:not([hidden]), #signed-out:not([hidden])", {
    state: "attached",
  });
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

/**
 * The account card shows this email (from GET /me) and the session list has loaded; and the
 * view's loads (the passkeys' too) have all answered, so that no request of the page's is
 * still under way when the test goes on.
 */
async function expectLoggedIn(page, email) {
  await page.waitForSelector("#signed-in:not([hidden]):not([aria-busy])");
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

/** A request to the API from this test, not from the page. */
async function apiPost(path, body) {
  return fetch(`${BASE}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
}

/** The page's own requests that use up a mailed code. */
function codeUses(page) {
  const uses = [];
  page.on("request", (request) => {
    const { pathname } = new URL(request.url());
    if (["/password/reset", "/email/verify"].includes(pathname)) uses.push(pathname);
  });
  return uses;
}

async function focused(page) {
  return page.evaluate(() => document.activeElement?.id);
}

async function statusText(page) {
  return page.locator("#status").textContent();
}

/** A request to the API from this test, with an access token: its status and JSON body. */
async function apiCall(method, path, { body, token } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null };
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

scenario("at the server's other loopback name (127.0.0.1 or localhost), the cookie works as well", async (newContext) => {
  const context = await newContext();
  const page = await open(context, `${OTHER_BASE}/`);
  const email = uniqueEmail();
  await signUp(page, email);
  assert.ok((await context.cookies(OTHER_BASE)).some((cookie) => cookie.name === COOKIE));
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

    // The page's host on another port is another origin of the same site: SameSite lets
    // the cookie go along, and the service's own rules refuse it (403 csrf_rejected). The
    // other loopback name (127.0.0.1 for localhost) is another site altogether: the browser
    // keeps the cookie back (SameSite=Strict), and without it the text/plain body is simply
    // unsupported (415).
    const sameSite = new URL(BASE).hostname;
    const otherSite = new URL(OTHER_BASE).hostname;
    const origins = [
      { origin: `http://${sameSite}:${port}`, cookieSent: true, status: 403, code: "csrf_rejected" },
      { origin: `http://${otherSite}:${port}`, cookieSent: false, status: 415, code: "unsupported_media_type" },
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

// --- mailed codes: a forgotten password, verifying and changing the address --------------

scenario("a forgotten password is reset in the page with the mailed code", async (newContext) => {
  const page = await open(await newContext());
  const email = uniqueEmail();
  await signUp(page, email);
  await page.locator("#logout").click();
  await expectLoggedOut(page);

  await page.getByRole("button", { name: "Forgot your password?" }).click();
  await page.waitForSelector("#forgot-form:not([hidden])");
  assert.equal(await page.locator("#signed-out").isHidden(), true, "the task stands alone");
  assert.equal(await focused(page), "forgot-email");
  await shoot(page, "forgot-password");
  await page.locator("#forgot-email").fill(email);
  await page.getByRole("button", { name: "Send a code" }).click();
  await page.waitForSelector("#reset-form:not([hidden])");
  assert.match(
    await page.locator("#reset-note").textContent(),
    /^If an account has this address, we sent a code/,
  );
  assert.equal(await page.locator("#reset-email").inputValue(), email);
  assert.equal(await focused(page), "reset-code");
  const code = codeIn(await mailTo(email, SUBJECTS.reset));

  // A wrong code, then the right one (typed loosely) with a password too short: each error
  // sits next to its field, and the code is still good after the 422.
  const submit = page.getByRole("button", { name: "Set the new password" });
  await page.locator("#reset-code").fill(code === "ZZZZZZZZ" ? "YYYYYYYY" : "ZZZZZZZZ");
  await page.locator("#reset-password").fill(NEW_PASSWORD);
  await submit.click();
  await page.waitForSelector("#reset-code-error:not(:empty)");
  assert.match(await page.locator("#reset-code-error").textContent(), /wrong, used or expired/);
  assert.equal(await focused(page), "reset-code");
  await page.locator("#reset-code").fill(`${code.slice(0, 4)}-${code.slice(4)}`.toLowerCase());
  await page.locator("#reset-password").fill("short");
  await submit.click();
  await page.waitForSelector("#reset-password-error:not(:empty)");
  assert.match(await page.locator("#reset-password-error").textContent(), /^New password .*at least 8/);
  assert.equal(await page.locator("#reset-code-error").textContent(), "");
  await shoot(page, "reset-errors");

  await page.locator("#reset-password").fill(NEW_PASSWORD);
  await submit.click();
  await page.waitForSelector("#task", { state: "hidden" });
  await expectLoggedOut(page);
  assert.match(await statusText(page), /password is changed, and every session .* has ended/);
  assert.equal(await page.locator("#login-identifier").inputValue(), email, "the email is filled in");
  assert.equal(await focused(page), "login-password");
  await shoot(page, "password-reset");
  await mailTo(email, SUBJECTS.changed);

  await page.locator("#login-password").fill(NEW_PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
  await expectLoggedIn(page, email);
  assert.equal(await page.locator("#me-verified").textContent(), "verified", "the reset proved the address");
});

scenario("the banner asks for the code mailed at signup, and goes once it is entered", async (newContext) => {
  const page = await open(await newContext());
  const email = uniqueEmail();
  await signUp(page, email);
  const banner = page.locator("#verify-banner");
  await banner.waitFor();
  assert.match(await banner.textContent(), new RegExp(`Verify your email: enter the code we sent to ${email.replaceAll(".", "\\.")}`));
  assert.equal(await page.locator("#me-verified").textContent(), "not verified");
  await shoot(page, "verify-banner");
  const first = codeIn(await mailTo(email, SUBJECTS.verify));

  // A new code replaces the first.
  await page.getByRole("button", { name: "Send a new code" }).click();
  await page.waitForSelector("#verify-note:not(:empty)");
  assert.match(await page.locator("#verify-note").textContent(), /We sent a new code/);
  assert.equal(await focused(page), "verify-code");
  const second = codeIn(await mailTo(email, SUBJECTS.verify, 2));
  assert.notEqual(first, second);
  await page.locator("#verify-code").fill(first);
  await page.getByRole("button", { name: "Verify", exact: true }).click();
  await page.waitForSelector("#verify-code-error:not(:empty)");
  assert.match(await page.locator("#verify-code-error").textContent(), /wrong, used or expired/);

  await page.locator("#verify-code").fill(second);
  await page.getByRole("button", { name: "Verify", exact: true }).click();
  await banner.waitFor({ state: "hidden" });
  assert.equal(await page.locator("#me-verified").textContent(), "verified");
  assert.match(await statusText(page), /is verified/);
  await shoot(page, "verified");
  await page.reload();
  await expectLoggedIn(page, email);
  assert.equal(await banner.isHidden(), true);
  assert.equal(await page.locator("#me-verified").textContent(), "verified");
});

scenario("a reset link opens the form filled in, and only submitting it uses the code", async (newContext) => {
  const context = await newContext();
  const email = uniqueEmail();
  const signup = await open(context);
  await signUp(signup, email);
  await signup.locator("#logout").click();
  await expectLoggedOut(signup);
  await signup.close();
  assert.equal((await apiPost("/password/forgot", { email })).status, 202);
  const mail = await mailTo(email, SUBJECTS.reset);
  const code = codeIn(mail);
  const link = linkIn(mail);
  assert.ok(link.startsWith(`${BASE}/#reset?`), link);

  // Opened from the mail, in a new tab: the form, filled in; the link leaves the address bar.
  const page = watch(await context.newPage());
  const uses = codeUses(page);
  await page.goto(link);
  await page.waitForSelector("#reset-form:not([hidden])");
  assert.equal(await page.locator("#reset-email").inputValue(), email);
  assert.equal(await page.locator("#reset-code").inputValue(), code);
  assert.equal(await focused(page), "reset-password");
  assert.equal(new URL(page.url()).hash, "", "the link is out of the address bar");
  await settledBehindTask(page);
  await shoot(page, "reset-link");
  // Opened again in the same tab (only the fragment changes), then a reload: nothing.
  await page.goto(link);
  await page.waitForSelector("#reset-form:not([hidden])");
  assert.equal(await page.locator("#reset-code").inputValue(), code);
  await page.reload();
  await settled(page);
  await expectLoggedOut(page);
  assert.equal(await page.locator("#task").isHidden(), true, "a reload opens nothing");
  assert.deepEqual(uses, [], "opening the link sent nothing");
  // The code is still good: the service checks it before the password, and a 422 keeps it.
  assert.equal(
    (await apiPost("/password/reset", { email, code, new_password: "x" })).status,
    422,
  );

  await page.goto(link);
  await page.locator("#reset-password").fill(NEW_PASSWORD);
  await page.getByRole("button", { name: "Set the new password" }).click();
  await page.waitForSelector("#task", { state: "hidden" });
  assert.deepEqual(uses, ["/password/reset"]);
  assert.match(await statusText(page), /password is changed/);
  await page.locator("#login-password").fill(NEW_PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
  await expectLoggedIn(page, email);
});

scenario("a verify link asks to confirm, and confirms logged out", async (newContext) => {
  const account = await open(await newContext());
  const email = uniqueEmail();
  await signUp(account, email);
  const mail = await mailTo(email, SUBJECTS.verify);
  const code = codeIn(mail);
  const link = linkIn(mail);
  assert.ok(link.startsWith(`${BASE}/#verify?`), link);

  // Another browser, logged out.
  const context = await newContext();
  const page = watch(await context.newPage());
  const uses = codeUses(page);
  await page.goto(link);
  await page.waitForSelector("#confirm:not([hidden])");
  assert.equal(await page.locator("#confirm-email").textContent(), email);
  assert.equal(await page.locator("#confirm-code").inputValue(), code);
  assert.equal(new URL(page.url()).hash, "");
  await settledBehindTask(page);
  await shoot(page, "verify-link");
  await page.getByRole("button", { name: "Cancel" }).click();
  await expectLoggedOut(page);
  await page.goto(link);
  await page.waitForSelector("#confirm:not([hidden])");
  await page.reload();
  await settled(page);
  assert.equal(await page.locator("#task").isHidden(), true, "a reload opens nothing");
  assert.deepEqual(uses, [], "opening the link sent nothing");

  await page.goto(link);
  await page.getByRole("button", { name: "Confirm", exact: true }).click();
  await page.waitForSelector("#task", { state: "hidden" });
  assert.deepEqual(uses, ["/email/verify"]);
  await expectLoggedOut(page);
  assert.match(await statusText(page), /is verified\. Log in to continue/);
  assert.equal(await page.locator("#login-identifier").inputValue(), email);
  assert.equal(await focused(page), "login-password");

  // The account's own page sees it on its next look.
  await account.getByRole("button", { name: "Reload" }).click();
  await account.locator("#verify-banner").waitFor({ state: "hidden" });
  assert.equal(await account.locator("#me-verified").textContent(), "verified");
});

scenario("changing the email: a notice to the old address, a code to the new", async (newContext) => {
  const page = await open(await newContext());
  const email = uniqueEmail();
  await signUp(page, email);
  const other = uniqueEmail();
  assert.equal((await apiPost("/signup", { email: other, password: PASSWORD })).status, 201);

  const sendCode = page.getByRole("button", { name: "Send a code to the new address" });
  // A wrong password is not an ended session: the page stays logged in and says so.
  await page.locator("#change-email").fill(uniqueEmail());
  await page.locator("#change-password").fill("not the password at all");
  await sendCode.click();
  await page.waitForSelector("#change-password-error:not(:empty)");
  assert.match(await page.locator("#change-password-error").textContent(), /password is wrong/);
  assert.equal(await focused(page), "change-password");
  assert.equal(await page.locator("#signed-in").isVisible(), true);
  // Another account's address, then the account's own.
  await page.locator("#change-email").fill(other);
  await page.locator("#change-password").fill(PASSWORD);
  await sendCode.click();
  await page.waitForSelector("#change-email-error:not(:empty)");
  assert.match(await page.locator("#change-email-error").textContent(), /Another account has this address/);
  await page.locator("#change-email").fill(email);
  await page.locator("#change-password").fill(PASSWORD);
  await sendCode.click();
  await page.waitForFunction(() => /differ/.test(document.querySelector("#change-email-error").textContent));
  assert.equal(await focused(page), "change-email");
  await shoot(page, "change-email-errors");

  const newEmail = uniqueEmail();
  await page.locator("#change-email").fill(newEmail);
  await page.locator("#change-password").fill(PASSWORD);
  await sendCode.click();
  await page.waitForSelector("#change-confirm-form:not([hidden])");
  assert.equal(
    await page.locator("#change-note").textContent(),
    `We sent a code to ${newEmail}; your address changes when you confirm it.`,
  );
  assert.equal(await focused(page), "change-code");
  await shoot(page, "change-email-code-sent");
  const notice = await mailTo(email, SUBJECTS.changing);
  assert.ok(notice.text.includes(newEmail), notice.text);
  assert.doesNotMatch(notice.text, /Your code:/, "the old address gets no code");
  const code = codeIn(await mailTo(newEmail, SUBJECTS.verify));
  assert.equal(await page.locator("#me-email").textContent(), email, "not changed yet");

  await page.locator("#change-code").fill(code);
  await page.getByRole("button", { name: "Confirm the new address" }).click();
  await expectLoggedIn(page, newEmail);
  assert.equal(await page.locator("#me-verified").textContent(), "verified");
  assert.equal(await page.locator("#verify-banner").isHidden(), true);
  assert.match(await statusText(page), /now/);
  assert.equal(await page.locator("#change-form").isVisible(), true, "back to the first step");
  await shoot(page, "email-changed");

  // Once more, confirmed through the mail's link in this logged-in page: the account view
  // shows the new address.
  const newer = uniqueEmail();
  await page.locator("#change-email").fill(newer);
  await page.locator("#change-password").fill(PASSWORD);
  await sendCode.click();
  await page.waitForSelector("#change-confirm-form:not([hidden])");
  await page.goto(linkIn(await mailTo(newer, SUBJECTS.verify)));
  await page.waitForSelector("#confirm:not([hidden])");
  assert.equal(await page.locator("#confirm-email").textContent(), newer);
  await page.getByRole("button", { name: "Confirm", exact: true }).click();
  await expectLoggedIn(page, newer);
  assert.equal(await page.locator("#change-form").isVisible(), true, "the change is done");
  assert.equal(await focused(page), "account-heading");

  // The old address no longer logs in; the new one does.
  const fresh = await open(await newContext());
  await logIn(fresh, email);
  await fresh.waitForSelector("#login-error:not(:empty)");
  await fresh.locator("#login-identifier").fill(newer);
  await fresh.getByRole("button", { name: "Log in" }).click();
  await expectLoggedIn(fresh, newer);
});

// --- two-factor authentication -----------------------------------------------------------

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/** The key's bytes from its base32 text (RFC 4648, spaces and padding ignored). */
function base32Decode(text) {
  const bytes = [];
  let bits = 0;
  let value = 0;
  for (const char of text.replace(/[\s=]/g, "").toUpperCase()) {
    const index = BASE32.indexOf(char);
    assert.ok(index >= 0, `not base32: ${char} in ${text}`);
    value = ((value << 5) | index) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

const TOTP_STEP = 30;
/** The 30-second step a moment falls in: RFC 6238's T. */
function totpStep(at = Date.now()) {
  return Math.floor(at / 1000 / TOTP_STEP);
}

/** RFC 4226's HOTP with HMAC-SHA-1, for counter `step`: RFC 6238's TOTP at that step. */
function totp(key, step, digits = 6) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const digest = createHmac("sha1", key).update(counter).digest();
  const offset = digest[digest.length - 1] & 0x0f;
  const number = digest.readUInt32BE(offset) & 0x7fffffff;
  return String(number % 10 ** digits).padStart(digits, "0");
}

/**
 * The app of one account: `usedStep` is the last step whose code the service has seen.
 * `fresh()` is the current step's code, or the next step's when the current one is used.
 */
function authenticator(secret, usedStep = -1) {
  const key = base32Decode(secret);
  return {
    key,
    usedStep,
    fresh() {
      this.usedStep = Math.max(totpStep(), this.usedStep + 1);
      assert.ok(this.usedStep <= totpStep() + 1, "only one step ahead is accepted");
      return totp(key, this.usedStep);
    },
    /** A code no step near now has: wrong. */
    wrong() {
      const near = new Set([-2, -1, 0, 1, 2].map((delta) => totp(key, totpStep() + delta)));
      for (let n = 0; ; n += 1) {
        const code = String(n * 137_911 % 1_000_000).padStart(6, "0");
        if (!near.has(code)) return code;
      }
    },
  };
}

test("the tests' TOTP is RFC 6238's (SHA-1 test vectors)", () => {
  // RFC 6238 appendix B: the SHA-1 key is the ASCII "12345678901234567890".
  const key = Buffer.from("12345678901234567890", "ascii");
  assert.equal(totp(key, totpStep(59_000), 8), "94287082");
  assert.equal(totp(key, totpStep(59_000)), "287082");
  assert.equal(totp(key, totpStep(1_111_111_109_000), 8), "07081804");
  assert.equal(totp(key, totpStep(20_000_000_000_000), 8), "65353130");
  // The same key as an app receives it: base32, as in an otpauth:// URI.
  assert.deepEqual(base32Decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), key);
  assert.deepEqual(base32Decode("gezd gnbv gy3t qojq gezd gnbv gy3t qojq"), key);
});

/** An account with the app's codes on, set up through the API: its app and recovery codes. */
async function accountWithMfa() {
  const email = uniqueEmail();
  const signup = await apiCall("POST", "/signup", { body: { email, password: PASSWORD } });
  assert.equal(signup.status, 201, JSON.stringify(signup.json));
  const token = signup.json.access_token;
  const key = await apiCall("POST", "/me/mfa/totp", { token, body: { password: PASSWORD } });
  assert.equal(key.status, 200, JSON.stringify(key.json));
  const app = authenticator(key.json.secret);
  const confirmed = await apiCall("POST", "/me/mfa/totp/confirm", {
    token,
    body: { code: app.fresh() },
  });
  assert.equal(confirmed.status, 200, JSON.stringify(confirmed.json));
  return { email, app, recoveryCodes: confirmed.json.recovery_codes };
}

/** Logs in with the password, and waits for the code step that the account asks for. */
async function logInToCodeStep(page, identifier) {
  const answered = page.waitForResponse((response) => new URL(response.url()).pathname === "/login");
  await logIn(page, identifier);
  const response = await answered;
  assert.equal(response.status(), 403);
  const body = await response.json();
  assert.equal(body.code, "mfa_required");
  await page.waitForSelector("#mfa-login-form:not([hidden])");
  assert.equal(await page.locator("#login-form").isHidden(), true, "the password step is done");
  return body.mfa_token;
}

/** Types a code into the login's code step and sends it; the status of `/login/mfa`. */
async function enterCode(page, field, code) {
  const answered = page.waitForResponse((response) => new URL(response.url()).pathname === "/login/mfa");
  await page.locator(field).fill(code);
  await page.getByRole("button", { name: "Continue" }).click();
  return (await answered).status();
}

const enterLoginCode = (page, code) => enterCode(page, "#mfa-login-code", code);
const enterRecoveryCode = (page, code) => enterCode(page, "#mfa-login-recovery", code);

async function waitForText(page, selector, pattern) {
  await page.waitForFunction(
    ([selector, source]) => new RegExp(source).test(document.querySelector(selector)?.textContent ?? ""),
    [selector, pattern.source],
  );
}

async function overflow(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

scenario("two-factor authentication: set up with the QR code, recovery codes shown once, then a login asks for the code", async (newContext) => {
  const context = await newContext();
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
  const page = await open(context);
  const email = uniqueEmail();
  await signUp(page, email);
  const section = page.locator("#mfa");
  await section.waitFor();
  assert.match(await page.locator("#mfa-state").textContent(), /^Off/);
  await shoot(page, "mfa-off");

  // The password first: a wrong one is said next to its field, and the session goes on.
  await page.getByRole("button", { name: "Set up two-factor authentication" }).click();
  assert.equal(await focused(page), "mfa-setup-password");
  await page.locator("#mfa-setup-password").fill("not the password at all");
  await section.getByRole("button", { name: "Continue" }).click();
  await waitForText(page, "#mfa-setup-password-error", /password is wrong/);
  assert.equal(await focused(page), "mfa-setup-password");
  await page.locator("#mfa-setup-password").fill(PASSWORD);
  await section.getByRole("button", { name: "Continue" }).click();

  // The key: the service's QR code, drawn as an image under the page's policy, and as text.
  await page.waitForSelector("#mfa-enrol-form:not([hidden])");
  assert.equal(await focused(page), "mfa-enrol-heading");
  await page.waitForFunction(() => {
    const image = document.querySelector("#mfa-qr");
    return image.complete && image.naturalWidth > 0;
  });
  assert.match(await page.locator("#mfa-qr").getAttribute("src"), /^blob:/);
  const secret = (await page.locator("#mfa-secret").textContent()).replace(/\s+/g, "");
  assert.match(secret, /^[A-Z2-7]{16,}$/);
  const uri = new URL(await page.locator("#mfa-open").getAttribute("href"));
  assert.equal(uri.protocol, "otpauth:");
  assert.equal(uri.searchParams.get("secret"), secret, "the link carries the same key");
  await shoot(page, "mfa-setup-key");
  await page.setViewportSize({ width: 360, height: 740 });
  assert.equal(await overflow(page), 0, "the key at phone width");
  await page.setViewportSize({ width: 1000, height: 760 });

  // A wrong code, then the one the app shows now.
  const app = authenticator(secret);
  await page.locator("#mfa-enrol-code").fill(app.wrong());
  await page.getByRole("button", { name: "Turn on two-factor authentication" }).click();
  await page.waitForSelector("#mfa-enrol-code-error:not(:empty)");
  assert.match(await page.locator("#mfa-enrol-code-error").textContent(), /code is wrong/);
  assert.equal(await page.locator("#mfa-enrol-code").getAttribute("aria-invalid"), "true");
  assert.equal(await focused(page), "mfa-enrol-code");
  await page.locator("#mfa-enrol-code").fill(app.fresh());
  await page.getByRole("button", { name: "Turn on two-factor authentication" }).click();

  // The recovery codes, once, with the warning; copied as they are shown.
  await page.waitForSelector("#mfa-codes:not([hidden])");
  assert.equal(await focused(page), "mfa-codes-heading");
  assert.match(await page.locator("#mfa-codes").textContent(), /will not be shown again/);
  const codes = await page.locator("#mfa-codes-list li").allTextContents();
  assert.equal(codes.length, 10);
  for (const code of codes) assert.match(code, /^[A-Z0-9]{5}-[A-Z0-9]{5}$/);
  assert.equal(new Set(codes).size, 10);
  assert.match(await page.locator("#mfa-state").textContent(), /^On/);
  assert.equal(await page.locator("#mfa-enrol-form").isHidden(), true);
  assert.equal(await page.locator("#mfa-secret").textContent(), "", "the key is gone from the page");
  await shoot(page, "mfa-recovery-codes");
  await page.getByRole("button", { name: "Copy the codes" }).click();
  await waitForText(page, "#mfa-codes-note", /^Copied/);
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  for (const code of codes) assert.ok(copied.includes(code), `${code} is not in:\n${copied}`);
  await page.setViewportSize({ width: 360, height: 740 });
  assert.equal(await overflow(page), 0, "the codes at phone width");
  await shoot(page, "phone-mfa-recovery-codes");
  await page.setViewportSize({ width: 1000, height: 760 });

  // Not after a reload: the service has them hashed, and the page kept none.
  await page.reload();
  await expectLoggedIn(page, email);
  await waitForText(page, "#mfa-state", /^On/);
  assert.equal(await page.locator("#mfa-codes").isHidden(), true);
  assert.equal(await page.locator("#mfa-codes-list li").count(), 0);
  assert.equal(await page.locator("#mfa-disable-form").isVisible(), true);
  assert.equal(await page.getByRole("button", { name: "Set up two-factor authentication" }).isVisible(), false);
  const me = await page.content();
  for (const code of codes) assert.ok(!me.includes(code), `${code} is still in the page`);
  await shoot(page, "mfa-on");

  // Logging in again: the password, then the code step.
  await page.locator("#logout").click();
  await expectLoggedOut(page);
  await logInToCodeStep(page, email);
  assert.equal(await focused(page), "mfa-login-code");
  const field = page.locator("#mfa-login-code");
  assert.equal(await field.getAttribute("autocomplete"), "one-time-code");
  assert.equal(await field.getAttribute("inputmode"), "numeric");
  assert.match(await page.locator("#mfa-login-note").textContent(), /authenticator app/);
  assert.equal(await refreshCookie(context), undefined, "no session before the code");
  await shoot(page, "mfa-login-code");

  // A wrong code, and the one used to turn it on: each refused, the step stays.
  for (const code of [app.wrong(), totp(app.key, app.usedStep)]) {
    assert.equal(await enterLoginCode(page, code), 400);
    await page.waitForSelector("#mfa-login-code-error:not(:empty)");
    assert.match(await page.locator("#mfa-login-code-error").textContent(), /wrong or was used/);
    assert.match(await page.locator("#mfa-login-error").textContent(), /wrong or was used/);
    assert.equal(await focused(page), "mfa-login-code");
    assert.equal(await page.locator("#signed-out").isVisible(), true);
  }
  await shoot(page, "mfa-login-wrong-code");

  // The next step's code, as the app shows it (with its space): logged in, as usual.
  const next = app.fresh();
  assert.equal(await enterLoginCode(page, `${next.slice(0, 3)} ${next.slice(3)}`), 200);
  await expectLoggedIn(page, email);
  assert.match(await statusText(page), /logged in/);
  assert.equal(await focused(page), "account-heading");
  assert.ok(await refreshCookie(context), "the session's cookie");
  assert.match(await page.locator("#mfa-state").textContent(), /^On/);
  // And the page is the same as after any login: it survives a reload.
  await page.reload();
  await expectLoggedIn(page, email);
});

scenario("a recovery code stands in for the app's code, once; an ended code step goes back to the password", async (newContext) => {
  const account = await accountWithMfa();
  const [first, second] = account.recoveryCodes;
  const page = await open(await newContext());

  // The code step's token is used up elsewhere (here by this test, with another recovery
  // code): the page's attempt is refused as `invalid_mfa_token`, and it asks for the
  // password again.
  const token = await logInToCodeStep(page, account.email);
  const elsewhere = await apiCall("POST", "/login/mfa", {
    body: { mfa_token: token, recovery_code: second },
  });
  assert.equal(elsewhere.status, 200, JSON.stringify(elsewhere.json));
  await page.getByRole("button", { name: "Use a recovery code instead" }).click();
  assert.equal(await focused(page), "mfa-login-recovery");
  assert.equal(await page.locator("#mfa-login-code").isVisible(), false);
  assert.equal(await enterRecoveryCode(page, first), 401);
  await page.waitForSelector("#login-form:not([hidden])");
  assert.equal(await page.locator("#mfa-login-form").isHidden(), true);
  assert.match(await page.locator("#login-error").textContent(), /Log in again/);
  assert.equal(await page.locator("#login-identifier").inputValue(), account.email);
  assert.equal(await focused(page), "login-password");
  await shoot(page, "mfa-login-token-ended");

  // Again: a recovery code, typed loosely (lower case, no hyphen), logs in.
  await logInToCodeStep(page, account.email);
  await page.getByRole("button", { name: "Use a recovery code instead" }).click();
  assert.equal(await enterRecoveryCode(page, first.replace("-", " ").toLowerCase()), 200);
  await expectLoggedIn(page, account.email);
  assert.equal(await focused(page), "account-heading");
  await waitForText(page, "#mfa-state", /^On/);

  // It works once: the second time it is refused, next to its field.
  await page.locator("#logout").click();
  await expectLoggedOut(page);
  await logInToCodeStep(page, account.email);
  await page.getByRole("button", { name: "Use a recovery code instead" }).click();
  assert.equal(await enterRecoveryCode(page, first), 400);
  await page.waitForSelector("#mfa-login-recovery-error:not(:empty)");
  assert.match(await page.locator("#mfa-login-recovery-error").textContent(), /recovery code is wrong or was used/);
  assert.equal(await focused(page), "mfa-login-recovery");
  await shoot(page, "mfa-login-recovery-used");
  // Back to the app's code: the switch goes both ways; then the app's code logs in.
  await page.getByRole("button", { name: "Use a code from your authenticator app instead" }).click();
  assert.equal(await focused(page), "mfa-login-code");
  assert.equal(await enterLoginCode(page, account.app.fresh()), 200);
  await expectLoggedIn(page, account.email);
});

scenario("turning it off takes the password and a code; then the password alone logs in", async (newContext) => {
  const account = await accountWithMfa();
  const context = await newContext();
  const page = await open(context);
  await logInToCodeStep(page, account.email);
  await page.getByRole("button", { name: "Use a recovery code instead" }).click();
  assert.equal(await enterRecoveryCode(page, account.recoveryCodes[0]), 200);
  await expectLoggedIn(page, account.email);
  await waitForText(page, "#mfa-state", /^On/);

  // A wrong password, then a wrong code: each said next to its field.
  const turnOff = page.getByRole("button", { name: "Turn off two-factor authentication" });
  await page.locator("#mfa-disable-password").fill("not the password at all");
  await page.locator("#mfa-disable-code").fill(account.app.wrong());
  await turnOff.click();
  await page.waitForSelector("#mfa-disable-password-error:not(:empty)");
  assert.match(await page.locator("#mfa-disable-password-error").textContent(), /password is wrong/);
  assert.equal(await focused(page), "mfa-disable-password");
  await page.locator("#mfa-disable-password").fill(PASSWORD);
  await turnOff.click();
  await page.waitForSelector("#mfa-disable-code-error:not(:empty)");
  assert.match(await page.locator("#mfa-disable-code-error").textContent(), /code is wrong/);
  assert.equal(await page.locator("#mfa-disable-password-error").textContent(), "");
  assert.equal(await focused(page), "mfa-disable-code");
  assert.equal(await page.locator("#signed-in").isVisible(), true, "still logged in");
  await shoot(page, "mfa-disable-errors");

  // The password and the app's code: off.
  await page.locator("#mfa-disable-password").fill(PASSWORD);
  await page.locator("#mfa-disable-code").fill(account.app.fresh());
  await turnOff.click();
  await waitForText(page, "#mfa-state", /^Off/);
  assert.match(await statusText(page), /is off/);
  assert.equal(await focused(page), "mfa-heading");
  assert.equal(await page.locator("#mfa-disable-form").isHidden(), true);
  assert.equal(await page.getByRole("button", { name: "Set up two-factor authentication" }).isVisible(), true);
  await shoot(page, "mfa-turned-off");

  // The password alone logs in now.
  const login = page.waitForResponse((response) => new URL(response.url()).pathname === "/login");
  await page.locator("#logout").click();
  await expectLoggedOut(page);
  await logIn(page, account.email);
  assert.equal((await login).status(), 200);
  await expectLoggedIn(page, account.email);
  assert.equal(await page.locator("#mfa-login-form").isHidden(), true);
  assert.match(await page.locator("#mfa-state").textContent(), /^Off/);
});

// --- passkeys (WebAuthn) -----------------------------------------------------------------
//
// The authenticator is Chromium's virtual one, added to a tab through the DevTools protocol:
// CTAP2, built in (transport `internal`), discoverable credentials, user verification that
// succeeds, presence simulated (no prompt waits), and backup-eligible, backed-up credentials
// (BE and BS set), as a passkey synced by a phone's or a password manager's cloud is.

const AUTHENTICATOR = {
  protocol: "ctap2",
  transport: "internal",
  hasResidentKey: true,
  hasUserVerification: true,
  isUserVerified: true,
  automaticPresenceSimulation: true,
  defaultBackupEligibility: true,
  defaultBackupState: true,
};

/** A virtual authenticator in this tab: its id, and what it holds. */
async function addAuthenticator(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: AUTHENTICATOR,
  });
  return {
    async credentials() {
      return (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
    },
    /** Whether the person passes the device's check (screen lock, fingerprint, PIN). */
    async verifies(isUserVerified) {
      await cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified });
    },
    /** The device is gone, with its passkeys. */
    async remove() {
      await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId });
    },
  };
}

/** The `n`th (0-based) item of the Passkeys section. */
function passkeyItemAt(page, n = 0) {
  return page.locator("#passkeys-list > li").nth(n);
}

/** Adds a passkey through the page: the status of the ceremony's finish, 201 when added. */
async function addPasskey(page, name) {
  const finished = page.waitForResponse(
    (response) => new URL(response.url()).pathname === "/me/passkeys/register/finish",
  );
  await page.locator("#passkey-add-name").fill(name);
  await page.getByRole("button", { name: "Add a passkey" }).click();
  const response = await finished;
  return response.status();
}

/** Signs in with a passkey through the page: the finish's status and JSON body. */
async function passkeySignIn(page) {
  const finished = page.waitForResponse(
    (response) => new URL(response.url()).pathname === "/login/passkey/finish",
  );
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  const response = await finished;
  return { status: response.status(), json: await response.json() };
}

/** The claims of an access token (a JWT): its payload, decoded, unchecked. */
function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
}

/** Collects the paths of the requests a page sends to the service's login endpoints. */
function loginRequests(page) {
  const sent = [];
  page.on("request", (request) => {
    const { pathname } = new URL(request.url());
    if (pathname.startsWith("/login")) sent.push(pathname);
  });
  return sent;
}

scenario("passkeys: add one with a name, rename it, then sign in with it typing nothing (amr hwk)", async (newContext) => {
  const context = await newContext();
  const page = await open(context);
  const authenticator = await addAuthenticator(page);
  await expectLoggedOut(page);
  assert.equal(await page.getByRole("button", { name: "Sign in with a passkey" }).isVisible(), true);

  const email = uniqueEmail();
  await signUp(page, email);
  const section = page.locator("#passkeys");
  await section.waitFor();
  assert.equal(await page.locator("#passkeys-empty").isVisible(), true, "none yet");
  assert.equal(await page.locator("#passkeys-list > li").count(), 0);
  await shoot(page, "passkeys-none");

  // Added with a name: listed with it, never used yet.
  assert.equal(await addPasskey(page, "Laptop"), 201);
  await page.waitForSelector("#passkeys-list > li");
  const item = passkeyItemAt(page);
  assert.equal(await item.locator(".passkey-name").textContent(), "Laptop");
  assert.match(await item.locator(".passkey-meta").textContent(), /^Added .+ · never used yet$/);
  assert.equal(await page.locator("#passkeys-empty").isHidden(), true);
  assert.match(await statusText(page), /passkey “Laptop” is added/);
  assert.equal(await focused(page), "passkeys-heading");
  assert.equal(await page.locator("#passkey-add-name").inputValue(), "", "the form is reset");
  await shoot(page, "passkey-added");

  // The authenticator holds it as a discoverable (resident) credential of this site, backed
  // up: what lets the login ask for no email.
  const [credential, ...others] = await authenticator.credentials();
  assert.deepEqual(others, []);
  assert.equal(credential.isResidentCredential, true);
  assert.equal(credential.rpId, new URL(BASE).hostname);
  assert.ok(credential.userHandle, "the credential carries the account's user handle");
  assert.equal(credential.backupEligibility, true);
  assert.equal(credential.backupState, true);

  // Renamed in place: an empty name is refused next to its field, then the new one is kept.
  await item.getByRole("button", { name: "Rename the passkey Laptop" }).click();
  const input = item.locator("input");
  assert.equal(await focused(page), await input.getAttribute("id"));
  assert.equal(await input.inputValue(), "Laptop");
  await input.fill("   ");
  await item.getByRole("button", { name: "Save the name" }).click();
  await item.locator(".field-error:not(:empty)").waitFor();
  assert.match(await item.locator(".field-error").textContent(), /Enter a name/);
  assert.equal(await input.getAttribute("aria-invalid"), "true");
  const renamed = page.waitForResponse(
    (response) => response.request().method() === "PATCH" && new URL(response.url()).pathname.startsWith("/me/passkeys/"),
  );
  await input.fill("Work laptop");
  await item.getByRole("button", { name: "Save the name" }).click();
  assert.equal((await renamed).status(), 200);
  await waitForText(page, "#passkeys-list > li .passkey-name", /^Work laptop$/);
  assert.match(await statusText(page), /now named “Work laptop”/);
  assert.equal(await passkeyItemAt(page).locator("form").isHidden(), true);
  assert.equal(
    await page.evaluate(() => document.activeElement?.getAttribute("aria-label")),
    "Rename the passkey Work laptop",
  );

  // Logged out, then in with the passkey: nothing typed, no password sent.
  await page.locator("#logout").click();
  await expectLoggedOut(page);
  assert.equal(await refreshCookie(context), undefined);
  assert.equal(await page.locator("#login-identifier").inputValue(), "");
  const sent = loginRequests(page);
  await shoot(page, "passkey-sign-in");
  const { status, json } = await passkeySignIn(page);
  assert.equal(status, 200, JSON.stringify(json));
  assert.deepEqual(claimsOf(json.access_token).amr, ["hwk"]);
  await expectLoggedIn(page, email);
  assert.deepEqual(sent, ["/login/passkey/start", "/login/passkey/finish"]);
  assert.match(await statusText(page), /logged in with your passkey/);
  assert.equal(await focused(page), "account-heading");
  assert.equal(await page.locator("#passkey-login-error").textContent(), "");

  // A session like a password login's: the cookie, which a reload uses; and the passkey's
  // new name and its use, from the service.
  const cookie = await refreshCookie(context);
  assert.ok(cookie, "the session's refresh cookie");
  assert.equal(cookie.httpOnly, true);
  await page.reload();
  await expectLoggedIn(page, email);
  await page.waitForSelector("#passkeys-list > li");
  assert.equal(await passkeyItemAt(page).locator(".passkey-name").textContent(), "Work laptop");
  assert.match(await passkeyItemAt(page).locator(".passkey-meta").textContent(), /last used just now/);
  await shoot(page, "passkey-signed-in");
  await page.setViewportSize({ width: 360, height: 740 });
  assert.equal(await overflow(page), 0, "the passkeys at phone width");
  await shoot(page, "phone-passkeys");
});

scenario("passkeys: an account with two-factor authentication signs in with its passkey, with no code step", async (newContext) => {
  const account = await accountWithMfa();
  const page = await open(await newContext());
  await addAuthenticator(page);
  await logInToCodeStep(page, account.email);
  assert.equal(await page.locator("#passkey-login").isHidden(), true, "not offered at the code step");
  assert.equal(await enterLoginCode(page, account.app.fresh()), 200);
  await expectLoggedIn(page, account.email);
  await waitForText(page, "#mfa-state", /^On/);
  await page.locator("#passkeys").waitFor();
  assert.equal(await addPasskey(page, "Phone"), 201);
  await page.waitForSelector("#passkeys-list > li");

  await page.locator("#logout").click();
  await expectLoggedOut(page);
  assert.equal(await page.locator("#passkey-login").isVisible(), true, "offered again");
  const sent = loginRequests(page);
  const { status, json } = await passkeySignIn(page);
  assert.equal(status, 200, JSON.stringify(json));
  assert.deepEqual(claimsOf(json.access_token).amr, ["hwk"]);
  await expectLoggedIn(page, account.email);
  // The passkey is both factors at once: no code was asked for.
  assert.deepEqual(sent, ["/login/passkey/start", "/login/passkey/finish"]);
  assert.equal(await page.locator("#mfa-login-form").isHidden(), true);
  assert.match(await page.locator("#mfa-state").textContent(), /^On/);
});

scenario("passkeys: deleting one asks first; a deleted passkey no longer signs in, and the password still does", async (newContext) => {
  const context = await newContext();
  const page = await open(context);
  const authenticator = await addAuthenticator(page);
  const email = uniqueEmail();
  await signUp(page, email);
  await page.locator("#passkeys").waitFor();
  assert.equal(await addPasskey(page, "Laptop"), 201);
  const item = passkeyItemAt(page);
  await item.waitFor();

  // Asked first; "Keep it" keeps it.
  await item.getByRole("button", { name: "Delete the passkey Laptop" }).click();
  assert.match(await item.locator(".passkey-confirm").textContent(), /Delete “Laptop”\? It will no longer sign you in/);
  assert.equal(await item.locator(".passkey-view").isHidden(), true);
  await shoot(page, "passkey-delete-confirm");
  await item.getByRole("button", { name: "Keep it" }).click();
  assert.equal(await item.locator(".passkey-view").isVisible(), true);
  assert.equal(
    await page.evaluate(() => document.activeElement?.getAttribute("aria-label")),
    "Delete the passkey Laptop",
  );

  // Deleted for real.
  const deleted = page.waitForResponse((response) => response.request().method() === "DELETE");
  await item.getByRole("button", { name: "Delete the passkey Laptop" }).click();
  await item.getByRole("button", { name: "Delete the passkey", exact: true }).click();
  assert.equal((await deleted).status(), 204);
  await page.waitForSelector("#passkeys-empty:not([hidden])");
  assert.equal(await page.locator("#passkeys-list > li").count(), 0);
  assert.match(await statusText(page), /“Laptop” is deleted: it no longer signs you in/);
  assert.equal(await focused(page), "passkeys-heading");
  await shoot(page, "passkey-deleted");

  // The device still holds it (the service cannot reach into it), but it signs in no more.
  assert.equal((await authenticator.credentials()).length, 1);
  await page.locator("#logout").click();
  await expectLoggedOut(page);
  const { status, json } = await passkeySignIn(page);
  assert.equal(status, 401, JSON.stringify(json));
  assert.equal(json.code, "invalid_credentials");
  await page.waitForSelector("#passkey-login-error:not(:empty)");
  assert.match(await page.locator("#passkey-login-error").textContent(), /may have been deleted from your account/);
  assert.equal(await page.locator("#signed-out").isVisible(), true);
  assert.equal(await refreshCookie(context), undefined, "no session");
  assert.equal(await focused(page), "passkey-login-button");
  await shoot(page, "passkey-sign-in-refused");
  // The password still works.
  await logIn(page, email);
  await expectLoggedIn(page, email);
});

scenario("passkeys: signing up with a passkey and no password; its only passkey cannot be deleted (409 last_credential) until another is added", async (newContext) => {
  const context = await newContext();
  const page = await open(context);
  let authenticator = await addAuthenticator(page);
  const email = uniqueEmail();
  const username = `e2e_${Date.now().toString(36)}`;

  // The email and username of the signup form, no password: the browser's prompt instead.
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByLabel("Username (optional)").fill(username);
  const finished = page.waitForResponse(
    (response) => new URL(response.url()).pathname === "/signup/passkey/finish",
  );
  await page.getByRole("button", { name: "Create the account with a passkey" }).click();
  const response = await finished;
  assert.equal(response.status(), 201);
  assert.deepEqual(claimsOf((await response.json()).access_token).amr, ["hwk"]);
  await expectLoggedIn(page, email);
  assert.equal(await page.locator("#me-username").textContent(), username);
  assert.match(await statusText(page), /logged in with its passkey\. It has no password/);
  assert.equal(await focused(page), "account-heading");
  assert.ok(await refreshCookie(context), "the first session's cookie");
  const [credential] = await authenticator.credentials();
  assert.equal(credential.isResidentCredential, true);
  await page.waitForSelector("#passkeys-list > li");
  const first = passkeyItemAt(page);
  const firstName = await first.locator(".passkey-name").textContent();
  assert.ok(firstName, "the service names it");

  // Its only way in: the service refuses to delete it, and the item says why.
  await first.getByRole("button", { name: `Delete the passkey ${firstName}` }).click();
  const refused = page.waitForResponse((response) => response.request().method() === "DELETE");
  await first.getByRole("button", { name: "Delete the passkey", exact: true }).click();
  assert.equal((await refused).status(), 409);
  await first.locator(".passkey-error:not(:empty)").waitFor();
  assert.match(
    await first.locator(".passkey-error").textContent(),
    /cannot be deleted: your account has no password, and this is its only passkey.*Add another passkey first/,
  );
  assert.equal(await page.locator("#passkeys-list > li").count(), 1);
  assert.equal(await page.locator("#signed-in").isVisible(), true, "still logged in");
  await shoot(page, "passkey-last-credential");

  // It signs in, with nothing typed.
  await page.locator("#logout").click();
  await expectLoggedOut(page);
  assert.equal((await passkeySignIn(page)).status, 200);
  await expectLoggedIn(page, email);

  // A new device (this one's authenticator gone), and a passkey from it: now the first one
  // can go.
  await authenticator.remove();
  authenticator = await addAuthenticator(page);
  await page.locator("#passkeys").waitFor();
  assert.equal(await addPasskey(page, "Phone"), 201);
  await page.waitForFunction(() => document.querySelectorAll("#passkeys-list > li").length === 2);
  const old = page.locator("#passkeys-list > li", { hasText: firstName }).filter({ hasNotText: "Phone" });
  await old.getByRole("button", { name: `Delete the passkey ${firstName}` }).click();
  const deleted = page.waitForResponse((response) => response.request().method() === "DELETE");
  await old.getByRole("button", { name: "Delete the passkey", exact: true }).click();
  assert.equal((await deleted).status(), 204);
  await page.waitForFunction(() => document.querySelectorAll("#passkeys-list > li").length === 1);
  assert.equal(await passkeyItemAt(page).locator(".passkey-name").textContent(), "Phone");
});

scenario("passkeys: a closed prompt is a quiet note, a device's second passkey is refused, another address says where passkeys work", async (newContext) => {
  const page = await open(await newContext());
  const authenticator = await addAuthenticator(page);

  // Signing in on a device with no passkey for the service: the browser answers as if the
  // prompt were closed (NotAllowedError), and the page says so quietly.
  const sent = loginRequests(page);
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await page.waitForSelector("#passkey-login-note:not(:empty)");
  assert.match(await page.locator("#passkey-login-note").textContent(), /No passkey was used/);
  assert.equal(await page.locator("#passkey-login-error").textContent(), "");
  assert.equal(await page.locator("#status").getAttribute("class"), "status", "not an error");
  assert.deepEqual(sent, ["/login/passkey/start"], "nothing to finish");
  assert.equal(await focused(page), "passkey-login-button");
  await shoot(page, "passkey-sign-in-closed");

  // Signing up with a passkey, and the person fails the device's check (or closes the
  // prompt): no account, said quietly; the address is still free for a signup.
  const email = uniqueEmail();
  await authenticator.verifies(false);
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByRole("button", { name: "Create the account with a passkey" }).click();
  await page.waitForSelector("#passkey-signup-note:not(:empty)");
  assert.match(await page.locator("#passkey-signup-note").textContent(), /No account was created/);
  assert.equal(await page.locator("#signup-error").textContent(), "");
  assert.equal(await focused(page), "passkey-signup-button");
  await shoot(page, "passkey-signup-closed");
  await signUp(page, email);
  assert.equal(await page.locator("#passkey-login-note").textContent(), "", "gone once logged in");
  await page.locator("#passkeys").waitFor();

  // The person fails the device's check (or closes the prompt): nothing is added, quietly.
  await page.locator("#passkey-add-name").fill("Laptop");
  await page.getByRole("button", { name: "Add a passkey" }).click();
  await page.waitForSelector("#passkeys-note:not(:empty)");
  assert.match(await page.locator("#passkeys-note").textContent(), /No passkey was added/);
  assert.equal(await page.locator("#passkey-add-error").textContent(), "");
  assert.equal(await page.locator("#passkeys-list > li").count(), 0);
  assert.deepEqual(await authenticator.credentials(), []);
  await authenticator.verifies(true);

  // One passkey per device: the service lists the account's passkeys as excluded, and the
  // browser refuses a second one in the same authenticator.
  assert.equal(await addPasskey(page, "Laptop"), 201);
  await page.waitForSelector("#passkeys-list > li");
  assert.equal(await page.locator("#passkeys-note").textContent(), "", "the earlier note goes");
  const finishes = [];
  page.on("request", (request) => {
    if (new URL(request.url()).pathname === "/me/passkeys/register/finish") finishes.push(request);
  });
  await page.locator("#passkey-add-name").fill("Laptop again");
  await page.getByRole("button", { name: "Add a passkey" }).click();
  await page.waitForSelector("#passkey-add-error:not(:empty)");
  assert.match(await page.locator("#passkey-add-error").textContent(), /already has a passkey for your account/);
  assert.deepEqual(finishes, []);
  assert.equal(await page.locator("#passkeys-list > li").count(), 1);
  assert.equal((await authenticator.credentials()).length, 1);
  await shoot(page, "passkey-already-on-device");

  // The page at the server's other name (127.0.0.1): passkeys belong to the public URL's
  // domain, and the browser refuses them elsewhere; the page says where they work.
  const elsewhere = await open(await newContext(), `${OTHER_BASE}/`);
  await elsewhere.getByRole("button", { name: "Sign in with a passkey" }).click();
  await elsewhere.waitForSelector("#passkey-login-error:not(:empty)");
  assert.match(
    await elsewhere.locator("#passkey-login-error").textContent(),
    new RegExp(`belong to ${new URL(BASE).hostname}, and this page was opened at ${new URL(OTHER_BASE).hostname.replaceAll(".", "\\.")}`),
  );
});

scenario("passkeys: a browser without WebAuthn is offered none", async (newContext) => {
  const context = await newContext();
  await context.addInitScript(() => {
    delete window.PublicKeyCredential;
  });
  const page = await open(context);
  const asked = [];
  page.on("request", (request) => {
    if (new URL(request.url()).pathname.includes("passkey")) asked.push(request.url());
  });
  assert.equal(await page.locator("#passkey-login").isHidden(), true);
  assert.equal(await page.locator("#passkey-signup").isHidden(), true);
  assert.equal(await page.getByRole("button", { name: "Sign in with a passkey" }).isVisible(), false);
  assert.equal(await page.getByRole("button", { name: "Create the account with a passkey" }).isVisible(), false);
  await signUp(page, uniqueEmail());
  assert.equal(await page.locator("#passkeys").isHidden(), true);
  await page.getByRole("button", { name: "Reload" }).click();
  await page.waitForFunction(() => !document.querySelector("#reload-sessions").disabled);
  assert.equal(await page.locator("#passkeys").isHidden(), true);
  assert.deepEqual(asked, [], "the page asked nothing about passkeys");
});
