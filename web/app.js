// Latchkey's page: sign up (with a password, or with a passkey and no password), log in
// (with a code from an authenticator app when the account has two-factor authentication, or
// with a passkey instead), see the account and its sessions, end a session, log out, verify
// or change the email address, reset a forgotten password with a mailed code, turn
// two-factor authentication on or off, and add, rename or delete passkeys — through the API
// on this origin, the way a single-page app should use it:
//
// - The access token is kept in this module's memory only, never in localStorage or
//   sessionStorage, so no other script and no later visitor can read it from storage.
// - This script never sees the refresh token: signup, login and refresh ask for the cookie
//   transport, and the token travels in the HttpOnly `__Host-latchkey_refresh` cookie. On
//   load, `POST /refresh` with that cookie restores the session, so a reload keeps you in.
// - The access token is refreshed shortly before it expires, and after a 401; callers that
//   need a refresh at the same time share the one in flight.
// - The mails' links (`#reset?code=…&email=…`, `#verify?code=…&email=…`) only open a form
//   with the code filled in: nothing is sent until the person submits it, since sending
//   uses the code up. The link is then taken out of the address bar.
// - A login's second step holds the `mfa_token` of `/login`'s `mfa_required` answer in
//   memory only, like the access token; it is good for one login, for 5 minutes.
// - The QR code of a new authenticator key is the service's SVG, shown as an image from a
//   blob: URL (an SVG in an <img> runs no script and loads nothing), never parsed into the
//   page. The recovery codes are shown once and dropped from the DOM when put away.
// - Passkeys (WebAuthn): the service's options arrive as JSON and go to the browser through
//   `PublicKeyCredential.parseCreationOptionsFromJSON` / `parseRequestOptionsFromJSON`; the
//   credential goes back as its `toJSON()`, with the ceremony's id. Signing in asks for no
//   email (discoverable credentials), and its answer is treated like a password login's.
//   Where the browser lacks WebAuthn (or its JSON forms) the page shows no passkey controls;
//   a prompt the person closed is not an error.
// - Errors are RFC 9457 problem documents; they are shown as plain sentences, and a 422's
//   field errors next to their fields.
//
// The DOM is built with textContent and elements only: the page's Content-Security-Policy
// enforces Trusted Types, so innerHTML and the like would throw.

const $ = (selector) => document.querySelector(selector);

/** The access token and when to renew it, or null when signed out. In memory only. */
let access = null;
/** The refresh in flight, shared by every caller that needs one. */
let refreshing = null;
let refreshTimer = 0;

/** Tells this browser's other tabs of this page about logins and logouts (never tokens). */
const tabs = "BroadcastChannel" in window ? new BroadcastChannel("latchkey") : null;

// --- talking to the API ------------------------------------------------------------------

/** A failed request: an RFC 9457 problem document, or a network failure. */
class Problem extends Error {
  constructor(status, body = {}, retryAfter = null) {
    super(body.detail ?? `HTTP ${status}`);
    this.status = status;
    this.code = body.code ?? (status === 0 ? "network_error" : "unknown");
    this.errors = Array.isArray(body.errors) ? body.errors : [];
    this.retryAfter = retryAfter;
    /** With `mfa_required`: the token for the login's second step. */
    this.mfaToken = typeof body.mfa_token === "string" ? body.mfa_token : null;
  }
}

async function problemOf(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // Not a problem document (a proxy's error page, say): the status alone has to do.
  }
  return new Problem(response.status, body, response.headers.get("Retry-After"));
}

/** One request to this origin. Cookies go along (same origin), the cache is bypassed. */
async function send(path, { method = "GET", body, token } = {}) {
  const headers = { Accept: "application/json, application/problem+json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    return await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new Problem(0);
  }
}

/** Like send, and parses the answer; a non-2xx answer throws its Problem. */
async function call(path, options) {
  const response = await send(path, options);
  if (!response.ok) throw await problemOf(response);
  return response.status === 204 ? null : response.json();
}

/**
 * An authenticated request. On a 401 it refreshes (unless another caller already has) and
 * tries once more; when the session cannot be refreshed, the page is signed out.
 */
async function api(path, options = {}) {
  if (!access) throw new Problem(401, { code: "signed_out" });
  const used = access.token;
  let response = await send(path, { ...options, token: used });
  if (response.status === 401) {
    // A wrong password (changing the email asks for it) is an answer, not an ended session.
    const problem = await problemOf(response);
    if (problem.code === "invalid_credentials") throw problem;
    if (access?.token === used) await refresh();
    if (!access) throw new Problem(401, { code: "signed_out" });
    response = await send(path, { ...options, token: access.token });
  }
  if (!response.ok) throw await problemOf(response);
  return response.status === 204 ? null : response.json();
}

/**
 * Exchanges the refresh-token cookie for a new access token (and a new cookie). Concurrent
 * callers get the same promise. A refusal (401: ended, expired or reused) signs the page out.
 */
function refresh() {
  refreshing ??= (async () => {
    try {
      const response = await send("/refresh", {
        method: "POST",
        body: { refresh_token_transport: "cookie" },
      });
      if (!response.ok) {
        const problem = await problemOf(response);
        if (access && (problem.status === 401 || problem.status === 403)) {
          signOutLocally(sentence(problem), { error: true });
        }
        throw problem;
      }
      adopt(await response.json());
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/** Takes a token response's access token and plans its renewal. */
function adopt(tokens) {
  const lifetime = tokens.expires_in * 1000;
  // Renew a fifth of the lifetime before expiry, at most a minute before (so 14 minutes
  // into the default 15), leaving time for a retry should the service be briefly away.
  const renewIn = Math.max(lifetime - Math.min(60_000, lifetime / 5), 1_000);
  access = {
    token: tokens.access_token,
    renewAt: Date.now() + renewIn,
  };
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(renewInBackground, renewIn);
}

async function renewInBackground() {
  try {
    await refresh();
  } catch (problem) {
    // Refused: refresh() has signed the page out. Unreachable: try again shortly; should
    // the token expire meanwhile, the next request's 401 refreshes anyway.
    if (access && (problem.status === 0 || problem.status >= 500)) {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(renewInBackground, 10_000);
    }
  }
}

// A tab that was asleep (timers throttled, laptop closed) renews at once when seen again.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && access && Date.now() >= access.renewAt) {
    renewInBackground();
  }
});

// --- plain words for problems ------------------------------------------------------------

const MESSAGES = {
  network_error: "The service could not be reached. Check your connection and try again.",
  invalid_credentials: "That email or username and password do not match an account.",
  account_disabled: "This account has been disabled.",
  email_not_verified: "Confirm your email address first, with the code we mailed you.",
  invalid_code: "The code is wrong, used or expired. Check it, or ask for a new one.",
  email_already_verified: "Your email address is verified already.",
  email_taken: "An account with this email address already exists. Log in instead?",
  username_taken: "This username is taken. Choose another one.",
  too_many_attempts: (problem) => `Too many attempts. Try again ${waitFor(problem.retryAfter)}.`,
  invalid_refresh_token: "Your session has ended. Log in again.",
  refresh_token_reused:
    "Your session was ended because an old sign-in token was used again. Log in again.",
  invalid_token: "Your session has ended. Log in again.",
  missing_token: "Your session has ended. Log in again.",
  signed_out: "You are logged out.",
  csrf_rejected: "The service refused the request as coming from another site. Reload the page.",
  service_unavailable: "The service is temporarily unavailable. Try again in a moment.",
  request_timeout: "The request took too long. Try again.",
  validation_failed: "Some fields need another look.",
  invalid_mfa_code: "The code is wrong or was used already. Enter the code your app shows now.",
  invalid_mfa_token:
    "The time to enter the code ran out, or too many codes were wrong. Log in again.",
  mfa_already_enabled: "Two-factor authentication is on already.",
  mfa_not_enabled: "Two-factor authentication is off already.",
  mfa_not_pending: "This setup was cancelled, or started again in another tab. Start it again.",
};

/** Asking for mail too often is not a failed attempt. */
const MAIL_MESSAGES = {
  too_many_attempts: (problem) =>
    `Too many codes were asked for. Try again ${waitFor(problem.retryAfter)}.`,
};

/** Field errors that arrive as a problem's code rather than in `errors`. */
const FIELD_CODES = { email_taken: "email", username_taken: "username", invalid_code: "code" };

const FIELD_LABELS = {
  email: "Email",
  username: "Username",
  password: "Password",
  new_password: "New password",
  new_email: "New email address",
  code: "Code",
  recovery_code: "Recovery code",
  name: "Name",
};

/** A problem in plain words; `messages` has a form's own words for some codes. */
function sentence(problem, messages = {}) {
  const message = messages[problem.code] ?? MESSAGES[problem.code];
  if (typeof message === "function") return message(problem);
  return message ?? problem.message ?? "Something went wrong. Try again.";
}

function waitFor(retryAfter) {
  const seconds = Number.parseInt(retryAfter ?? "", 10);
  if (!Number.isFinite(seconds)) return "later";
  if (seconds < 90) return `in ${seconds} seconds`;
  return `in ${Math.ceil(seconds / 60)} minutes`;
}

// --- forms -------------------------------------------------------------------------------

/** Clears a form's messages. */
function clearErrors(form) {
  for (const element of form.querySelectorAll(".field-error, .form-error")) {
    element.textContent = "";
  }
  for (const input of form.querySelectorAll("input")) input.removeAttribute("aria-invalid");
}

/** Puts a message next to the input and marks it invalid. */
function fieldError(input, message) {
  input.setAttribute("aria-invalid", "true");
  const slot = $(`#${input.id}-error`);
  slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
}

/**
 * Shows a problem on a form: each field error next to its field (`inputs` maps the API's
 * field names to inputs), and a summary above; focus goes to the first field to fix.
 * `fields` maps problem codes to the field they are about, `messages` has the form's own
 * words for some codes.
 */
function showProblem(form, problem, inputs, { fields = FIELD_CODES, messages = {} } = {}) {
  const summary = form.querySelector(".form-error");
  const marked = [];
  for (const error of problem.errors) {
    const input = inputs[error.field];
    if (!input) continue;
    const label = FIELD_LABELS[error.field] ?? error.field;
    fieldError(input, `${label} ${error.message}.`);
    marked.push(input);
  }
  const field = fields[problem.code];
  if (field && inputs[field]) {
    fieldError(inputs[field], sentence(problem, messages));
    marked.push(inputs[field]);
  }
  summary.textContent = sentence(problem, messages);
  (marked[0] ?? firstShownInput(form))?.focus();
}

/** The form's first input that is not in a hidden part of it. */
function firstShownInput(form) {
  return [...form.querySelectorAll("input")].find((input) => !input.closest("[hidden]"));
}

/** Runs a form's action with its button disabled and its errors shown (see showProblem). */
function onSubmit(form, inputs, action, options) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button.disabled) return;
    clearErrors(form);
    button.disabled = true;
    try {
      await action();
    } catch (problem) {
      if (!(problem instanceof Problem)) throw problem;
      showProblem(form, problem, inputs, options);
    } finally {
      button.disabled = false;
    }
  });
}

const login = {
  form: $("#login-form"),
  identifier: $("#login-identifier"),
  password: $("#login-password"),
};

onSubmit(
  login.form,
  { email: login.identifier, username: login.identifier, password: login.password },
  async () => {
    const identifier = login.identifier.value.trim();
    if (!identifier) {
      fieldError(login.identifier, "Enter your email address or username.");
      login.identifier.focus();
      return;
    }
    const body = identifier.includes("@")
      ? { email: identifier, password: login.password.value }
      : { username: identifier, password: login.password.value };
    let tokens;
    try {
      tokens = await call("/login", {
        method: "POST",
        body: { ...body, refresh_token_transport: "cookie" },
      });
    } catch (problem) {
      // The right password, but the service wants the address proven first.
      if (problem.code === "email_not_verified" && body.email) {
        openConfirm(body.email, "", sentence(problem));
        return;
      }
      // The right password, and the account asks for its second factor too.
      if (problem.code === "mfa_required" && problem.mfaToken) {
        openMfaStep(problem.mfaToken);
        return;
      }
      throw problem;
    }
    login.form.reset();
    await signedIn(tokens, "You are logged in.");
  },
);

const mfaLogin = {
  form: $("#mfa-login-form"),
  note: $("#mfa-login-note"),
  codeField: $("#mfa-login-code-field"),
  code: $("#mfa-login-code"),
  recoveryField: $("#mfa-login-recovery-field"),
  recovery: $("#mfa-login-recovery"),
  toggle: $("#mfa-login-switch"),
  /** From `/login`'s `mfa_required`: finishes that one login. In memory only. */
  token: null,
  usingRecovery: false,
};

/** The login's second step, in place of the password form. */
function openMfaStep(token) {
  mfaLogin.token = token;
  mfaLogin.form.reset();
  useRecoveryCode(false);
  login.form.hidden = true;
  $("#forgot-aside").hidden = true;
  passkeyLogin.block.hidden = true;
  mfaLogin.form.hidden = false;
  mfaLogin.note.textContent =
    "The password is right. This account has two-factor authentication: enter the code from your authenticator app.";
  mfaLogin.code.focus();
}

/** Back to the password step; `message` says why when the second step ended on its own. */
function closeMfaStep(message = "") {
  mfaLogin.token = null;
  mfaLogin.form.reset();
  clearErrors(mfaLogin.form);
  mfaLogin.form.hidden = true;
  login.form.hidden = false;
  $("#forgot-aside").hidden = false;
  passkeyLogin.block.hidden = !passkeysSupported;
  $("#login-error").textContent = message;
}

/** Switches between the app's 6-digit code and a recovery code. */
function useRecoveryCode(on) {
  mfaLogin.usingRecovery = on;
  mfaLogin.codeField.hidden = on;
  mfaLogin.recoveryField.hidden = !on;
  mfaLogin.toggle.textContent = on
    ? "Use a code from your authenticator app instead"
    : "Use a recovery code instead";
  clearErrors(mfaLogin.form);
}

mfaLogin.toggle.addEventListener("click", () => {
  useRecoveryCode(!mfaLogin.usingRecovery);
  (mfaLogin.usingRecovery ? mfaLogin.recovery : mfaLogin.code).focus();
});

$("#mfa-login-cancel").addEventListener("click", () => {
  closeMfaStep();
  login.password.value = "";
  login.password.focus();
});

onSubmit(
  mfaLogin.form,
  { code: mfaLogin.code, recovery_code: mfaLogin.recovery },
  async () => {
    const field = mfaLogin.usingRecovery ? "recovery_code" : "code";
    const input = mfaLogin.usingRecovery ? mfaLogin.recovery : mfaLogin.code;
    // Spaces are how apps and people group codes; the service wants the characters.
    const value = input.value.replace(/\s+/g, "");
    if (!value) {
      fieldError(
        input,
        mfaLogin.usingRecovery ? "Enter one of your recovery codes." : "Enter the 6-digit code.",
      );
      input.focus();
      return;
    }
    let tokens;
    try {
      tokens = await call("/login/mfa", {
        method: "POST",
        body: { mfa_token: mfaLogin.token, [field]: value, refresh_token_transport: "cookie" },
      });
    } catch (problem) {
      // Expired, used, or ended by too many wrong codes: the password step again.
      if (problem.code === "invalid_mfa_token") {
        closeMfaStep(sentence(problem));
        login.password.value = "";
        login.password.focus();
        return;
      }
      throw problem;
    }
    closeMfaStep();
    login.form.reset();
    await signedIn(tokens, "You are logged in.");
  },
  {
    // The wrong code is the one in the field shown.
    get fields() {
      return { invalid_mfa_code: mfaLogin.usingRecovery ? "recovery_code" : "code" };
    },
    get messages() {
      return mfaLogin.usingRecovery
        ? { invalid_mfa_code: "This recovery code is wrong or was used already." }
        : {};
    },
  },
);

const signup = {
  form: $("#signup-form"),
  email: $("#signup-email"),
  username: $("#signup-username"),
  password: $("#signup-password"),
};

onSubmit(
  signup.form,
  { email: signup.email, username: signup.username, password: signup.password },
  async () => {
    const body = {
      email: signup.email.value,
      password: signup.password.value,
      refresh_token_transport: "cookie",
    };
    const username = signup.username.value.trim();
    if (username) body.username = username;
    const tokens = await call("/signup", { method: "POST", body });
    signup.form.reset();
    await signedIn(tokens, "Your account is ready and you are logged in.");
  },
);

// --- a task of its own: a new password with a mailed code, or confirming an address ------

const task = {
  panel: $("#task"),
  recovery: $("#recovery"),
  confirm: $("#confirm"),
  /** Where focus was when the task opened, to return it on Cancel. */
  from: null,
};

/** Shows one task's card in place of the views (style.css hides them meanwhile). */
function openTask(card) {
  task.from ??= document.activeElement;
  task.panel.hidden = false;
  task.recovery.hidden = card !== task.recovery;
  task.confirm.hidden = card !== task.confirm;
}

function closeTask() {
  task.panel.hidden = true;
  task.recovery.hidden = true;
  task.confirm.hidden = true;
  for (const form of task.panel.querySelectorAll("form")) {
    form.reset();
    clearErrors(form);
  }
  const from = task.from;
  task.from = null;
  return from;
}

for (const button of task.panel.querySelectorAll(".task-cancel")) {
  button.addEventListener("click", () => closeTask()?.focus());
}

const recovery = {
  forgotForm: $("#forgot-form"),
  forgotEmail: $("#forgot-email"),
  resetForm: $("#reset-form"),
  note: $("#reset-note"),
  email: $("#reset-email"),
  code: $("#reset-code"),
  password: $("#reset-password"),
};

/** Step one, asking for a code; with `email` typed already when known. */
function openForgot(email = "") {
  openTask(task.recovery);
  recovery.forgotForm.hidden = false;
  recovery.resetForm.hidden = true;
  recovery.forgotEmail.value = email;
  recovery.forgotEmail.focus();
}

/** Step two, the code and a new password; from step one, or from a mail's link. */
function openReset(email, code, note) {
  openTask(task.recovery);
  recovery.forgotForm.hidden = true;
  recovery.resetForm.hidden = false;
  clearErrors(recovery.resetForm);
  recovery.email.value = email;
  recovery.code.value = code;
  recovery.password.value = "";
  recovery.note.textContent = note;
  (code ? recovery.password : recovery.code).focus();
}

$("#forgot").addEventListener("click", () => {
  const typed = login.identifier.value.trim();
  openForgot(typed.includes("@") ? typed : "");
});

onSubmit(
  recovery.forgotForm,
  { email: recovery.forgotEmail },
  async () => {
    const email = recovery.forgotEmail.value.trim();
    await call("/password/forgot", { method: "POST", body: { email } });
    openReset(
      email,
      "",
      `If an account has this address, we sent a code to ${email}. Enter it with a new password.`,
    );
  },
  { messages: MAIL_MESSAGES },
);

onSubmit(
  recovery.resetForm,
  { email: recovery.email, code: recovery.code, new_password: recovery.password },
  async () => {
    const email = recovery.email.value.trim();
    await call("/password/reset", {
      method: "POST",
      body: { email, code: recovery.code.value, new_password: recovery.password.value },
    });
    closeTask();
    const message =
      "Your password is changed, and every session of the account has ended. Log in with the new password.";
    // This browser's session, if any, has ended with the others.
    if (access) signOutLocally(message);
    else setStatus(message);
    login.identifier.value = email;
    login.password.value = "";
    login.password.focus();
  },
);

const confirmation = {
  form: $("#confirm-form"),
  email: $("#confirm-email"),
  code: $("#confirm-code"),
};

/** The step that proves an address with its code: from a mail's link, or a refused login. */
function openConfirm(email, code, message = "") {
  openTask(task.confirm);
  clearErrors(confirmation.form);
  confirmation.email.textContent = email;
  confirmation.code.value = code;
  $("#confirm-error").textContent = message;
  (code ? confirmation.form.querySelector("button[type=submit]") : confirmation.code).focus();
}

onSubmit(
  confirmation.form,
  { code: confirmation.code },
  async () => {
    const email = confirmation.email.textContent;
    const user = await call("/email/verify", {
      method: "POST",
      body: { email, code: confirmation.code.value },
    });
    closeTask();
    if (access) {
      await loadMe();
      setStatus(`Your email address ${user.email} is verified.`);
      $("#account-heading").focus();
    } else {
      setStatus(`Your email address ${user.email} is verified. Log in to continue.`);
      login.identifier.value = user.email;
      login.password.focus();
    }
  },
  { messages: { email_taken: "Another account has this address now." } },
);

/**
 * A mail's link, `#reset?code=…&email=…` or `#verify?code=…&email=…`: opens its form with
 * the code filled in, and sends nothing. The link then leaves the address bar (and the
 * history), so a reload does not open it again. Anything malformed is ignored.
 */
function openLink() {
  const match = /^#(reset|verify)\?(.*)$/s.exec(location.hash);
  if (!match) return;
  history.replaceState(null, "", location.pathname + location.search);
  const params = new URLSearchParams(match[2]);
  const code = (params.get("code") ?? "").trim();
  const email = (params.get("email") ?? "").trim();
  if (!/^[0-9A-Za-z -]{1,64}$/.test(code) || !/^[^\s@]+@[^\s@]+$/.test(email)) return;
  if (match[1] === "reset") {
    openReset(email, code, `Choose a new password for ${email}. The code from the mail is filled in.`);
  } else {
    openConfirm(email, code);
  }
}

window.addEventListener("hashchange", openLink);

// --- the signed-in view ------------------------------------------------------------------

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

function ago(timestamp) {
  const seconds = Math.round((new Date(timestamp).getTime() - Date.now()) / 1000);
  if (Math.abs(seconds) < 45) return "just now";
  const steps = [
    [60, "second"],
    [60, "minute"],
    [24, "hour"],
    [Number.POSITIVE_INFINITY, "day"],
  ];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) return relative.format(Math.trunc(value), unit);
    value /= size;
  }
  return dateTime.format(new Date(timestamp));
}

function timeElement(timestamp, text) {
  const element = document.createElement("time");
  element.dateTime = timestamp;
  element.title = dateTime.format(new Date(timestamp));
  element.textContent = text;
  return element;
}

/** "Firefox on Windows" from a User-Agent header, or the header's first word. */
function device(userAgent) {
  if (!userAgent) return "Unknown device";
  const find = (pairs) => pairs.find(([needle]) => userAgent.includes(needle))?.[1];
  const browser = find([
    ["Edg/", "Edge"],
    ["OPR/", "Opera"],
    ["Firefox/", "Firefox"],
    ["HeadlessChrome/", "Headless Chrome"],
    ["Chrome/", "Chrome"],
    ["Safari/", "Safari"],
  ]);
  const system = find([
    ["Android", "Android"],
    ["iPhone", "iPhone"],
    ["iPad", "iPad"],
    ["Windows", "Windows"],
    ["Mac OS X", "macOS"],
    ["CrOS", "ChromeOS"],
    ["Linux", "Linux"],
  ]);
  if (browser && system) return `${browser} on ${system}`;
  return browser ?? system ?? userAgent.split(/[\s/]/)[0];
}

const views = { signedOut: $("#signed-out"), signedIn: $("#signed-in") };
const sessionsList = $("#sessions");
const sessionTemplate = $("#session-template");

function setStatus(text, { error = false } = {}) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("is-error", error);
}

async function signedIn(tokens, message) {
  adopt(tokens);
  tabs?.postMessage("logged-in");
  setStatus(message);
  await showAccount();
  $("#account-heading").focus();
}

/** Shows the signed-in view, filled from `GET /me` and `GET /sessions`. */
async function showAccount() {
  // Logged in elsewhere (another tab) while this one was at the login's second step.
  if (mfaLogin.token) closeMfaStep();
  clearPasskeyLogin();
  await loadAccount(() => {
    views.signedOut.hidden = true;
    views.signedIn.hidden = false;
  });
}

/**
 * Loads the account, its sessions and its passkeys, with the view marked busy (for
 * assistive technology) until all three have answered; `then` runs once it is marked.
 */
async function loadAccount(then = () => {}) {
  views.signedIn.setAttribute("aria-busy", "true");
  then();
  try {
    await Promise.all([loadMe(), loadSessions(), loadPasskeys()]);
  } finally {
    views.signedIn.removeAttribute("aria-busy");
  }
}

async function loadMe() {
  try {
    renderMe(await api("/me"));
    $("#account-error").textContent = "";
  } catch (problem) {
    if (access) $("#account-error").textContent = sentence(problem);
  }
}

/** The account card, and the banner that asks for the code while the address is unproven. */
function renderMe(me) {
  // A new address (confirmed here, through a link, or in another tab): the change is done.
  const shown = $("#me-email").textContent;
  if (shown && shown !== me.email) resetChange();
  $("#me-email").textContent = me.email;
  $("#me-username").textContent = me.username ?? "—";
  $("#me-created").replaceChildren(
    timeElement(me.created_at, dateTime.format(new Date(me.created_at))),
  );
  $("#me-verified").textContent = me.email_verified ? "verified" : "not verified";
  $("#verify-email").textContent = me.email;
  if (me.email_verified && !verify.banner.hidden) {
    verify.form.reset();
    clearErrors(verify.form);
    verify.note.textContent = "";
  }
  verify.banner.hidden = me.email_verified;
  renderMfa(me);
}

// --- the email address: verifying it, changing it ---------------------------------------

const verify = {
  banner: $("#verify-banner"),
  form: $("#verify-form"),
  code: $("#verify-code"),
  note: $("#verify-note"),
  resend: $("#resend"),
};

onSubmit(verify.form, { code: verify.code }, async () => {
  verify.note.textContent = "";
  const user = await call("/email/verify", {
    method: "POST",
    body: { email: $("#verify-email").textContent, code: verify.code.value },
  });
  renderMe(user);
  setStatus(`Your email address ${user.email} is verified.`);
  $("#account-heading").focus();
});

verify.resend.addEventListener("click", async () => {
  const button = verify.resend;
  button.disabled = true;
  clearErrors(verify.form);
  verify.note.textContent = "";
  try {
    await api("/me/email/verification", { method: "POST" });
    verify.note.textContent = `We sent a new code to ${$("#verify-email").textContent}; it replaces the one before.`;
    verify.code.value = "";
    verify.code.focus();
  } catch (problem) {
    if (!access) return;
    if (problem.code === "email_already_verified") {
      await loadMe();
      setStatus(sentence(problem));
      $("#account-heading").focus();
    } else {
      $("#verify-error").textContent = sentence(problem, MAIL_MESSAGES);
    }
  } finally {
    button.disabled = false;
  }
});

const change = {
  form: $("#change-form"),
  email: $("#change-email"),
  password: $("#change-password"),
  confirmForm: $("#change-confirm-form"),
  note: $("#change-note"),
  code: $("#change-code"),
  /** The address a code was sent to, waiting for it. */
  pending: "",
};

/** Back to the first step, with nothing typed. */
function resetChange() {
  for (const form of [change.form, change.confirmForm]) {
    form.reset();
    clearErrors(form);
  }
  change.pending = "";
  change.note.textContent = "";
  change.form.hidden = false;
  change.confirmForm.hidden = true;
}

onSubmit(
  change.form,
  { new_email: change.email, password: change.password },
  async () => {
    const newEmail = change.email.value.trim();
    await api("/me/email", {
      method: "POST",
      body: { new_email: newEmail, password: change.password.value },
    });
    change.form.reset();
    change.pending = newEmail;
    change.form.hidden = true;
    change.confirmForm.hidden = false;
    change.note.textContent = `We sent a code to ${newEmail}; your address changes when you confirm it.`;
    change.code.focus();
  },
  {
    fields: { email_taken: "new_email", invalid_credentials: "password" },
    messages: {
      email_taken: "Another account has this address.",
      invalid_credentials: "The password is wrong.",
    },
  },
);

onSubmit(
  change.confirmForm,
  { code: change.code },
  async () => {
    const user = await call("/email/verify", {
      method: "POST",
      body: { email: change.pending, code: change.code.value },
    });
    resetChange();
    renderMe(user);
    setStatus(`Your email address is now ${user.email}.`);
    $("#account-heading").focus();
  },
  { messages: { email_taken: "Another account took this address meanwhile." } },
);

$("#change-cancel").addEventListener("click", () => {
  resetChange();
  change.email.focus();
});

// --- two-factor authentication: an authenticator app's codes, and recovery codes ---------

const mfa = {
  section: $("#mfa"),
  heading: $("#mfa-heading"),
  state: $("#mfa-state"),
  note: $("#mfa-note"),
  startActions: $("#mfa-start-actions"),
  start: $("#mfa-start"),
  setupForm: $("#mfa-setup-form"),
  setupPassword: $("#mfa-setup-password"),
  enrolForm: $("#mfa-enrol-form"),
  qr: $("#mfa-qr"),
  qrError: $("#mfa-qr-error"),
  secret: $("#mfa-secret"),
  openAside: $("#mfa-open-aside"),
  open: $("#mfa-open"),
  enrolCode: $("#mfa-enrol-code"),
  codes: $("#mfa-codes"),
  codesList: $("#mfa-codes-list"),
  codesNote: $("#mfa-codes-note"),
  disableForm: $("#mfa-disable-form"),
  disablePassword: $("#mfa-disable-password"),
  disableCode: $("#mfa-disable-code"),
  /** Whether the account has it on, as the service last said. */
  on: false,
  /** The QR code's blob: URL while the key is shown; revoked when it goes. */
  qrUrl: "",
};

/** The section, from a `User`; recovery codes on show stay until they are put away. */
function renderMfa(me) {
  // A service without the second factor says nothing of it: no section then.
  mfa.section.hidden = !Array.isArray(me.mfa);
  if (mfa.section.hidden) return;
  mfa.on = me.mfa.includes("totp");
  mfa.state.textContent = mfa.on
    ? "On: after your password, logging in asks for a code from your authenticator app."
    : "Off: your password alone logs you in. With a code from an authenticator app as well, a stolen password is not enough.";
  if (mfa.on) {
    // Turned on here, or in another tab meanwhile: a setup under way is over.
    closeSetup();
  } else {
    forgetRecoveryCodes();
    mfa.disableForm.reset();
    clearErrors(mfa.disableForm);
  }
  const settingUp = !mfa.setupForm.hidden || !mfa.enrolForm.hidden;
  mfa.startActions.hidden = mfa.on || settingUp;
  mfa.disableForm.hidden = !mfa.on || !mfa.codes.hidden;
}

/** Ends a setup under way (if any) and forgets its key. */
function closeSetup() {
  for (const form of [mfa.setupForm, mfa.enrolForm]) {
    form.reset();
    clearErrors(form);
    form.hidden = true;
  }
  forgetKey();
  mfa.startActions.hidden = mfa.on;
}

function forgetKey() {
  if (mfa.qrUrl) URL.revokeObjectURL(mfa.qrUrl);
  mfa.qrUrl = "";
  mfa.qr.removeAttribute("src");
  mfa.qr.hidden = false;
  mfa.qrError.textContent = "";
  mfa.secret.textContent = "";
  mfa.open.setAttribute("href", "#");
  mfa.openAside.hidden = true;
}

/** The new key: the service's QR code as an image, and the secret in groups of 4. */
function showKey(key) {
  forgetKey();
  mfa.qrUrl = URL.createObjectURL(new Blob([key.qr_svg], { type: "image/svg+xml" }));
  mfa.qr.src = mfa.qrUrl;
  mfa.secret.textContent = key.secret.replace(/(.{4})(?=.)/g, "$1 ");
  // On a phone the QR code cannot be scanned from its own screen: the app opens the link.
  if (typeof key.otpauth_uri === "string" && key.otpauth_uri.startsWith("otpauth://totp/")) {
    mfa.open.href = key.otpauth_uri;
    mfa.openAside.hidden = false;
  }
}

mfa.qr.addEventListener("error", () => {
  if (!mfa.qrUrl || mfa.qr.src !== mfa.qrUrl) return;
  mfa.qr.hidden = true;
  mfa.qrError.textContent = "The QR code cannot be shown here: enter the key by hand.";
});

/** The service says the state changed elsewhere (another tab): show it as it is now. */
async function mfaChanged(problem) {
  closeSetup();
  await loadMe();
  mfa.note.textContent = sentence(problem);
  mfa.heading.focus();
}

mfa.start.addEventListener("click", () => {
  mfa.note.textContent = "";
  mfa.startActions.hidden = true;
  mfa.setupForm.hidden = false;
  mfa.setupPassword.focus();
});

for (const button of mfa.section.querySelectorAll(".mfa-cancel")) {
  button.addEventListener("click", () => {
    closeSetup();
    mfa.start.focus();
  });
}

onSubmit(
  mfa.setupForm,
  { password: mfa.setupPassword },
  async () => {
    let key;
    try {
      key = await api("/me/mfa/totp", {
        method: "POST",
        body: { password: mfa.setupPassword.value },
      });
    } catch (problem) {
      if (problem.code === "mfa_already_enabled") return mfaChanged(problem);
      throw problem;
    }
    mfa.setupForm.reset();
    mfa.setupForm.hidden = true;
    showKey(key);
    mfa.enrolForm.hidden = false;
    $("#mfa-enrol-heading").focus();
  },
  {
    fields: { invalid_credentials: "password" },
    messages: { invalid_credentials: "The password is wrong." },
  },
);

onSubmit(
  mfa.enrolForm,
  { code: mfa.enrolCode },
  async () => {
    const code = mfa.enrolCode.value.replace(/\s+/g, "");
    if (!code) {
      fieldError(mfa.enrolCode, "Enter the 6-digit code the app shows.");
      mfa.enrolCode.focus();
      return;
    }
    let answer;
    try {
      answer = await api("/me/mfa/totp/confirm", { method: "POST", body: { code } });
    } catch (problem) {
      if (["mfa_not_pending", "mfa_already_enabled"].includes(problem.code)) {
        return mfaChanged(problem);
      }
      throw problem;
    }
    closeSetup();
    showRecoveryCodes(answer.recovery_codes);
    await loadMe();
    setStatus("Two-factor authentication is on.");
    $("#mfa-codes-heading").focus();
  },
  {
    fields: { invalid_mfa_code: "code" },
    messages: {
      invalid_mfa_code:
        "The code is wrong. Enter the one the app shows now; if it is refused again, check that the device's clock is right.",
    },
  },
);

function showRecoveryCodes(codes) {
  mfa.codesList.replaceChildren(
    ...codes.map((code) => {
      const item = document.createElement("li");
      item.textContent = code;
      return item;
    }),
  );
  mfa.codesNote.textContent = "";
  mfa.codes.hidden = false;
  mfa.disableForm.hidden = true;
}

/** Takes the codes out of the page: they are not to be seen again. */
function forgetRecoveryCodes() {
  mfa.codesList.replaceChildren();
  mfa.codesNote.textContent = "";
  mfa.codes.hidden = true;
}

$("#mfa-codes-copy").addEventListener("click", async () => {
  const codes = [...mfa.codesList.children].map((item) => item.textContent);
  const text = [
    `Latchkey recovery codes for ${$("#me-email").textContent}, each good for one login:`,
    ...codes,
    "",
  ].join("\n");
  try {
    await navigator.clipboard.writeText(text);
    mfa.codesNote.textContent =
      "Copied. Paste them into your password manager, or a file you keep safe.";
  } catch {
    // No clipboard here (refused, or not offered): select them, for the keyboard's copy.
    getSelection().selectAllChildren(mfa.codesList);
    mfa.codesNote.textContent = "The codes are selected: copy them with Ctrl+C (⌘C on a Mac).";
  }
});

$("#mfa-codes-done").addEventListener("click", () => {
  forgetRecoveryCodes();
  mfa.disableForm.hidden = !mfa.on;
  mfa.heading.focus();
});

onSubmit(
  mfa.disableForm,
  { password: mfa.disablePassword, code: mfa.disableCode },
  async () => {
    try {
      await api("/me/mfa/totp", {
        method: "DELETE",
        body: {
          password: mfa.disablePassword.value,
          code: mfa.disableCode.value.replace(/\s+/g, ""),
        },
      });
    } catch (problem) {
      if (problem.code === "mfa_not_enabled") return mfaChanged(problem);
      throw problem;
    }
    mfa.disableForm.reset();
    await loadMe();
    setStatus("Two-factor authentication is off: your password alone logs you in.");
    mfa.heading.focus();
  },
  {
    fields: { invalid_credentials: "password", invalid_mfa_code: "code" },
    messages: {
      invalid_credentials: "The password is wrong.",
      invalid_mfa_code: "The code is wrong or was used already.",
    },
  },
);

/** Signed out: nothing of a setup, the codes or the forms stays in the page. */
function resetMfa() {
  closeSetup();
  forgetRecoveryCodes();
  mfa.disableForm.reset();
  clearErrors(mfa.disableForm);
  mfa.disableForm.hidden = true;
  mfa.note.textContent = "";
  mfa.state.textContent = "";
  mfa.on = false;
  mfa.section.hidden = true;
}

// --- passkeys (WebAuthn): adding, naming and deleting them; signing in with one ----------

/**
 * Whether this browser makes and uses passkeys the way this page asks: WebAuthn with the
 * JSON forms of its options and credentials (WebAuthn Level 3). Where it does not, the page
 * shows no passkey controls at all.
 */
const passkeysSupported =
  typeof window.PublicKeyCredential === "function" &&
  typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function" &&
  typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function" &&
  typeof PublicKeyCredential.prototype.toJSON === "function";

/** The service's answers about passkeys, in plain words. */
const PASSKEY_MESSAGES = {
  invalid_ceremony: "That took too long, or was finished already in another tab. Try again.",
  // The service's detail says why, in a sentence of its own.
  invalid_passkey: (problem) =>
    problem.message && problem.message !== `HTTP ${problem.status}`
      ? `The service did not accept this passkey. ${problem.message}`
      : "The service did not accept this passkey.",
  passkey_exists: "This passkey is on your account already.",
  too_many_passkeys:
    "Your account has as many passkeys as it can have. Delete one you no longer use first.",
  passkeys_unavailable: "Passkeys are turned off on this service.",
  reauthentication_required:
    "To add a passkey, log out and log in again first: this session began more than 10 minutes ago.",
  last_credential:
    "This passkey cannot be deleted: your account has no password, and this is its only passkey, so you could no longer sign in. Add another passkey first.",
  not_found: "This passkey was deleted already.",
};

/** Signing in: a refused passkey is not a wrong password. */
const PASSKEY_LOGIN_MESSAGES = {
  ...PASSKEY_MESSAGES,
  invalid_credentials:
    "This passkey did not sign you in: it may have been deleted from your account. Log in with your password instead.",
  not_found: "This service does not offer passkeys.",
};

/**
 * Runs the browser's passkey prompt (`ask`). Resolves to the credential, or to null when the
 * person closed the prompt or let it time out (the browser tells both apart from nothing
 * else, on purpose: a page may not learn which passkeys a device has). Anything else throws
 * a Problem in plain words. `rpId` is the domain the service's passkeys belong to.
 */
async function passkeyPrompt(ask, { rpId, adding = false }) {
  try {
    return (await ask()) ?? null;
  } catch (error) {
    const message = promptFailure(error, { rpId, adding });
    if (message === null) return null;
    throw new Problem(0, { code: "passkey_prompt", detail: message });
  }
}

function promptFailure(error, { rpId, adding }) {
  switch (error?.name) {
    case "NotAllowedError":
    case "AbortError":
      return null;
    case "InvalidStateError":
      return adding
        ? "This device already has a passkey for your account: you can sign in with it as it is."
        : "The browser could not use a passkey. Try again.";
    case "SecurityError":
      return typeof rpId === "string" && rpId
        ? `The service's passkeys belong to ${rpId}, and this page was opened at ${location.hostname}: open the service at its usual address to use them.`
        : `Passkeys cannot be used at ${location.hostname}: open the service at its usual address to use them.`;
    case "NotSupportedError":
      return "This device cannot make the kind of passkey the service needs. Try another device, or a security key.";
    case "ConstraintError":
      return "This device cannot check that it is you (with a screen lock, fingerprint or PIN), which a passkey here needs.";
    default:
      return "The browser could not use a passkey. Try again, or use another device.";
  }
}

// Signing in with a passkey: nothing typed; the browser offers the passkeys it has for the
// service, and the answer is a token response like a password login's.
const passkeyLogin = {
  block: $("#passkey-login"),
  button: $("#passkey-login-button"),
  error: $("#passkey-login-error"),
  note: $("#passkey-login-note"),
};

passkeyLogin.block.hidden = !passkeysSupported;

/** Signed in: the signed-out view's passkey notes are done with. */
function clearPasskeyLogin() {
  passkeyLogin.error.textContent = "";
  passkeyLogin.note.textContent = "";
  passkeySignup.note.textContent = "";
}

passkeyLogin.button.addEventListener("click", async () => {
  const button = passkeyLogin.button;
  if (button.disabled) return;
  button.disabled = true;
  clearPasskeyLogin();
  clearErrors(login.form);
  let done = false;
  try {
    const { ceremony_id: ceremonyId, options } = await call("/login/passkey/start", {
      method: "POST",
      body: {},
    });
    const credential = await passkeyPrompt(
      () =>
        navigator.credentials.get({
          publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
        }),
      { rpId: options?.rpId },
    );
    if (!credential) {
      passkeyLogin.note.textContent =
        "No passkey was used. Try again, or log in with your password.";
      return;
    }
    const tokens = await call("/login/passkey/finish", {
      method: "POST",
      body: {
        ceremony_id: ceremonyId,
        credential: credential.toJSON(),
        refresh_token_transport: "cookie",
      },
    });
    login.form.reset();
    done = true;
    await signedIn(tokens, "You are logged in with your passkey.");
  } catch (problem) {
    if (!(problem instanceof Problem)) throw problem;
    passkeyLogin.error.textContent = sentence(problem, PASSKEY_LOGIN_MESSAGES);
  } finally {
    button.disabled = false;
    // A disabled button loses focus: give it back, unless the login moved on.
    if (!done) button.focus();
  }
});

// Signing up with a passkey instead of a password: the signup form's email and username,
// then the browser's prompt; the answer is the new account's first session, as a signup's.
const passkeySignup = {
  block: $("#passkey-signup"),
  button: $("#passkey-signup-button"),
  note: $("#passkey-signup-note"),
};

passkeySignup.block.hidden = !passkeysSupported;

passkeySignup.button.addEventListener("click", async () => {
  const button = passkeySignup.button;
  if (button.disabled) return;
  button.disabled = true;
  clearErrors(signup.form);
  passkeySignup.note.textContent = "";
  let done = false;
  try {
    const email = signup.email.value.trim();
    if (!email) {
      fieldError(signup.email, "Enter your email address.");
      signup.email.focus();
      done = true;
      return;
    }
    const body = { email };
    const username = signup.username.value.trim();
    if (username) body.username = username;
    const { ceremony_id: ceremonyId, options } = await call("/signup/passkey/start", {
      method: "POST",
      body,
    });
    const credential = await passkeyPrompt(
      () =>
        navigator.credentials.create({
          publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
        }),
      { rpId: options?.rp?.id },
    );
    if (!credential) {
      passkeySignup.note.textContent =
        "No account was created: the browser's prompt was closed. Try again, or choose a password.";
      return;
    }
    const tokens = await call("/signup/passkey/finish", {
      method: "POST",
      body: {
        ceremony_id: ceremonyId,
        credential: credential.toJSON(),
        refresh_token_transport: "cookie",
      },
    });
    signup.form.reset();
    done = true;
    await signedIn(
      tokens,
      "Your account is ready and you are logged in with its passkey. It has no password; to set one, log out and use “Forgot your password?”.",
    );
  } catch (problem) {
    if (!(problem instanceof Problem)) throw problem;
    done = true;
    showProblem(
      signup.form,
      problem,
      { email: signup.email, username: signup.username },
      { messages: PASSKEY_MESSAGES },
    );
  } finally {
    button.disabled = false;
    // A disabled button loses focus: give it back, unless focus moved on (to a field to fix,
    // or to the account).
    if (!done) button.focus();
  }
});

// The signed-in view's section: the account's passkeys, a new one, renaming, deleting.
const passkeys = {
  section: $("#passkeys"),
  heading: $("#passkeys-heading"),
  note: $("#passkeys-note"),
  error: $("#passkeys-error"),
  list: $("#passkeys-list"),
  empty: $("#passkeys-empty"),
  template: $("#passkey-template"),
  addForm: $("#passkey-add-form"),
  addName: $("#passkey-add-name"),
  /** Numbers the items' inputs, whose ids must be unique. */
  rendered: 0,
};

/** The longest name the service keeps, in characters. */
const PASSKEY_NAME_MAX = 64;

/** A name as the service will take it, or null after saying what is wrong with it. */
function passkeyName(input, { optional = false } = {}) {
  const name = input.value.trim();
  if (!name && !optional) {
    fieldError(input, "Enter a name.");
  } else if ([...name].length > PASSKEY_NAME_MAX) {
    fieldError(input, `Use at most ${PASSKEY_NAME_MAX} characters.`);
  } else {
    return name;
  }
  input.focus();
  return null;
}

async function loadPasskeys() {
  if (!passkeysSupported) return;
  try {
    const list = await api("/me/passkeys");
    if (!access) return;
    renderPasskeys(list);
    passkeys.error.textContent = "";
    passkeys.section.hidden = false;
  } catch (problem) {
    if (!access) return;
    // A service without passkeys says nothing of them: no section then.
    if (problem.status === 404) {
      passkeys.section.hidden = true;
      return;
    }
    passkeys.error.textContent = sentence(problem);
    passkeys.section.hidden = false;
  }
}

function renderPasskeys(list) {
  passkeys.list.replaceChildren(...list.map(passkeyItem));
  passkeys.empty.hidden = list.length > 0;
}

/** The item of one passkey, whose id is `passkey.id`. */
function passkeyItem(passkey) {
  const item = passkeys.template.content.firstElementChild.cloneNode(true);
  passkeys.rendered += 1;
  const number = passkeys.rendered;
  item.dataset.passkeyId = passkey.id;
  item.querySelector(".passkey-name").textContent = passkey.name;
  item.querySelector(".passkey-meta").append(
    "Added ",
    timeElement(passkey.created_at, dateTime.format(new Date(passkey.created_at))),
    " · ",
    ...(passkey.last_used_at
      ? ["last used ", timeElement(passkey.last_used_at, ago(passkey.last_used_at))]
      : ["never used yet"]),
  );
  const view = item.querySelector(".passkey-view");
  const error = item.querySelector(".passkey-error");
  const renameButton = item.querySelector(".passkey-rename");
  const deleteButton = item.querySelector(".passkey-delete");
  renameButton.setAttribute("aria-label", `Rename the passkey ${passkey.name}`);
  deleteButton.setAttribute("aria-label", `Delete the passkey ${passkey.name}`);

  // Renaming, in place.
  const form = item.querySelector(".passkey-rename-form");
  const input = form.querySelector("input");
  input.id = `passkey-${number}-name`;
  form.querySelector("label").htmlFor = input.id;
  form.querySelector(".field-error").id = `${input.id}-error`;
  input.setAttribute("aria-describedby", `${input.id}-error`);
  const showView = () => {
    form.hidden = true;
    confirm.hidden = true;
    view.hidden = false;
  };
  renameButton.addEventListener("click", () => {
    error.textContent = "";
    view.hidden = true;
    form.hidden = false;
    clearErrors(form);
    input.value = passkey.name;
    input.focus();
    input.select();
  });
  form.querySelector(".passkey-rename-cancel").addEventListener("click", () => {
    showView();
    renameButton.focus();
  });
  onSubmit(
    form,
    { name: input },
    async () => {
      const name = passkeyName(input);
      if (name === null) return;
      let renamed;
      try {
        renamed = await api(`/me/passkeys/${encodeURIComponent(passkey.id)}`, {
          method: "PATCH",
          body: { name },
        });
      } catch (problem) {
        if (problem.code === "not_found") return passkeyGone(problem);
        throw problem;
      }
      const fresh = passkeyItem(renamed);
      item.replaceWith(fresh);
      setStatus(`The passkey is now named “${renamed.name}”.`);
      fresh.querySelector(".passkey-rename").focus();
    },
    { messages: PASSKEY_MESSAGES },
  );

  // Deleting, once confirmed.
  const confirm = item.querySelector(".passkey-confirm");
  confirm.querySelector(".passkey-confirm-text").textContent =
    `Delete “${passkey.name}”? It will no longer sign you in.`;
  const confirmButton = confirm.querySelector(".passkey-delete-confirm");
  deleteButton.addEventListener("click", () => {
    error.textContent = "";
    view.hidden = true;
    confirm.hidden = false;
    confirm.querySelector(".passkey-delete-cancel").focus();
  });
  confirm.querySelector(".passkey-delete-cancel").addEventListener("click", () => {
    showView();
    deleteButton.focus();
  });
  confirmButton.addEventListener("click", async () => {
    if (confirmButton.disabled) return;
    confirmButton.disabled = true;
    try {
      await api(`/me/passkeys/${encodeURIComponent(passkey.id)}`, { method: "DELETE" });
    } catch (problem) {
      if (!access) return;
      if (problem.code === "not_found") return passkeyGone(problem);
      // Refused (the account's last way in, say): the passkey stays, and the item says why.
      showView();
      error.textContent = sentence(problem, PASSKEY_MESSAGES);
      deleteButton.focus();
      return;
    } finally {
      confirmButton.disabled = false;
    }
    await loadPasskeys();
    setStatus(
      `The passkey “${passkey.name}” is deleted: it no longer signs you in. Your device may still list it; you can remove it there too.`,
    );
    passkeys.heading.focus();
  });
  return item;
}

/** A passkey deleted elsewhere meanwhile (another tab): show the list as it is now. */
async function passkeyGone(problem) {
  await loadPasskeys();
  passkeys.note.textContent = sentence(problem, PASSKEY_MESSAGES);
  passkeys.heading.focus();
}

onSubmit(
  passkeys.addForm,
  { name: passkeys.addName },
  async () => {
    passkeys.note.textContent = "";
    const name = passkeyName(passkeys.addName, { optional: true });
    if (name === null) return;
    const { ceremony_id: ceremonyId, options } = await api("/me/passkeys/register/start", {
      method: "POST",
      body: {},
    });
    const credential = await passkeyPrompt(
      () =>
        navigator.credentials.create({
          publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
        }),
      { rpId: options?.rp?.id, adding: true },
    );
    if (!credential) {
      passkeys.note.textContent = "No passkey was added: the browser's prompt was closed.";
      return;
    }
    const body = { ceremony_id: ceremonyId, credential: credential.toJSON() };
    if (name) body.name = name;
    const added = await api("/me/passkeys/register/finish", { method: "POST", body });
    passkeys.addForm.reset();
    await loadPasskeys();
    setStatus(
      `The passkey “${added.name}” is added: you can sign in with it, without your password.`,
    );
    passkeys.heading.focus();
  },
  { messages: PASSKEY_MESSAGES },
);

/** Signed out: nothing of the account's passkeys stays in the page. */
function resetPasskeys() {
  passkeys.list.replaceChildren();
  passkeys.addForm.reset();
  clearErrors(passkeys.addForm);
  passkeys.note.textContent = "";
  passkeys.error.textContent = "";
  passkeys.empty.hidden = true;
  passkeys.section.hidden = true;
}

async function loadSessions() {
  const error = $("#sessions-error");
  try {
    const sessions = await api("/sessions");
    // This device first, then the others as the API orders them (most recently used first).
    const ordered = [...sessions.filter((s) => s.current), ...sessions.filter((s) => !s.current)];
    sessionsList.replaceChildren(...ordered.map(sessionItem));
    error.textContent = "";
  } catch (problem) {
    if (access) error.textContent = sentence(problem);
  }
}

function sessionItem(session) {
  const item = sessionTemplate.content.firstElementChild.cloneNode(true);
  const name = device(session.user_agent);
  item.dataset.sessionId = session.id;
  item.classList.toggle("current", session.current);
  item.querySelector(".session-device").textContent = name;
  item.querySelector(".badge").hidden = !session.current;
  item.querySelector(".session-meta").append(
    `${session.ip ?? "Unknown address"} · signed in `,
    timeElement(session.created_at, dateTime.format(new Date(session.created_at))),
    " · last used ",
    timeElement(session.last_used_at, ago(session.last_used_at)),
  );
  item.querySelector(".session-agent").textContent = session.user_agent ?? "";
  const button = item.querySelector(".session-end");
  if (session.current) {
    button.textContent = "Log out";
    button.setAttribute("aria-label", `Log out of this session (${name}, this device)`);
    button.addEventListener("click", () => logout("local", button));
  } else {
    button.setAttribute(
      "aria-label",
      `End session: ${name}, ${session.ip ?? "unknown address"}, last used ${ago(session.last_used_at)}`,
    );
    button.addEventListener("click", () => endSession(session.id, button));
  }
  return item;
}

async function endSession(id, button) {
  button.disabled = true;
  try {
    await api(`/sessions/${encodeURIComponent(id)}`, { method: "DELETE" });
    setStatus("Session ended: that device is logged out on its next request.");
  } catch (problem) {
    if (!access) return;
    if (problem.status !== 404) {
      $("#sessions-error").textContent = sentence(problem);
      button.disabled = false;
      return;
    }
    setStatus("That session had already ended.");
  }
  await loadSessions();
  $("#sessions-heading").focus();
}

/** Logs out of this session ("local") or all of them ("global"); the API clears the cookie. */
async function logout(scope, button) {
  button.disabled = true;
  try {
    await api("/logout", { method: "POST", body: { scope } });
  } catch (problem) {
    // A 401 means the session had already ended: logged out either way.
    if (access && problem.status !== 401) {
      $("#account-error").textContent = sentence(problem);
      button.disabled = false;
      return;
    }
  }
  button.disabled = false;
  tabs?.postMessage("logged-out");
  signOutLocally(
    scope === "global" ? "You are logged out on every device." : "You are logged out.",
  );
  $("#login-heading").focus();
}

/** Forgets the access token and shows the forms. */
function signOutLocally(message, { error = false } = {}) {
  access = null;
  clearTimeout(refreshTimer);
  views.signedIn.hidden = true;
  views.signedOut.hidden = false;
  sessionsList.replaceChildren();
  for (const id of ["#me-email", "#me-username", "#me-created", "#me-verified", "#account-error"]) {
    $(id).replaceChildren();
  }
  verify.banner.hidden = true;
  verify.form.reset();
  clearErrors(verify.form);
  verify.note.textContent = "";
  resetChange();
  resetMfa();
  resetPasskeys();
  setStatus(message, { error });
}

$("#logout").addEventListener("click", (event) => logout("local", event.currentTarget));
$("#logout-everywhere").addEventListener("click", (event) =>
  logout("global", event.currentTarget),
);
$("#reload-sessions").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  await loadAccount();
  button.disabled = false;
});

tabs?.addEventListener("message", ({ data }) => {
  if (data === "logged-out" && access) {
    signOutLocally("You logged out in another tab.");
  } else if (data === "logged-in") {
    restore();
  }
});

// --- start -------------------------------------------------------------------------------

/** Restores the session from the refresh-token cookie, if there is one. */
async function restore() {
  const wasSignedIn = access !== null;
  try {
    await refresh();
  } catch (problem) {
    // Signed in until now: refresh() has said why that ended. Otherwise no cookie, or an
    // ended session, simply means signed out; anything else is worth saying.
    if (wasSignedIn) return;
    const quiet = problem.status >= 400 && problem.status < 500;
    signOutLocally(quiet ? "" : sentence(problem), { error: !quiet });
    return;
  }
  setStatus("");
  await showAccount();
}

openLink();
restore();
