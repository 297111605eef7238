#!/usr/bin/env python3
"""Drive a live Latchkey through the client that openapi-python-client generates from
openapi.yaml: signup -> me -> refresh -> sessions -> logout -> me (401), plus one 422 and
the refresh token in a cookie (signup, then refresh with only the cookie); then the mailed
codes:
  - email verification: the signup's user is unverified; the code the signup mailed
    (wrong code 400 invalid_code, right code 200 verified); a new code is refused (409);
  - recovery: login; forgot password (202 sent_if_registered, the same for an unknown
    email); reset with a wrong code (400), a weak password (422 new_password), then the
    mailed code (204); the old token is refused (401), the old password too, the new one
    logs in;
  - email change: change the email (202 sent), verify the code mailed to the new address
    (200, the account has the new email);
then the second factor, on an account of its own:
  - TOTP: enrol with the password (secret, otpauth URI, QR as SVG), confirm with the current
    code (10 recovery codes), GET /me says mfa [totp]; a login answers 403 mfa_required with
    an mfa_token (read from the Problem model); /login/mfa refuses the code used at confirm
    (a replay), then takes the next step's code (access token amr [pwd, otp]); a second
    login: a wrong code (400 invalid_mfa_code), then a recovery code (200), its mfa_token
    then spent (401); disable with the password and an unused recovery code (204), after
    which GET /me says mfa [] and a login answers tokens directly. The codes are computed
    here (RFC 6238, standard library only), checked first against the RFC's vectors;
then passkeys (WebAuthn), with a software passkey written here (ES256 through the
`cryptography` package, a few lines of CBOR), on accounts of their own:
  - an account with a password adds a passkey (register start -> finish 201), lists it,
    renames it, logs out, logs in with it naming no account (amr [hwk]); the same answer
    again is refused (400 invalid_ceremony), one signed for another origin too (401
    invalid_credentials); removed (204), it logs in no more (401);
  - an account signs up with a passkey alone (201, amr [hwk]): its only passkey cannot be
    removed (409 last_credential), and a password login to it answers 401.
  The origin the passkey reports is $LATCHKEY_PUBLIC_URL's (default http://localhost:8080).

Usage: smoke.py [BASE_URL]   (default: $LATCHKEY_URL)

The mailed codes are read from the server's log ($LATCHKEY_SERVER_LOG): without
LATCHKEY_SMTP_URL, a server run with LATCHKEY_LOG=info logs each message it would send, with
its recipient and text (where a code stands on a line `Your code: XXXXXXXX`). .ci/clients.sh
runs it so.

The generated package `latchkey_client` is imported from $LATCHKEY_PY_CLIENT_DIR, or from
clients/python/generated/ beside this file; .ci/clients.sh generates it there with
`openapi-python-client generate --meta none --output-path clients/python/generated/latchkey_client`.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, os.environ.get("LATCHKEY_PY_CLIENT_DIR", str(Path(__file__).resolve().parent / "generated")))

from latchkey_client import AuthenticatedClient, Client  # noqa: E402
from latchkey_client.api.account import change_email, get_me, send_email_verification  # noqa: E402
from latchkey_client.api.auth import (  # noqa: E402
    finish_passkey_login,
    finish_passkey_signup,
    login,
    login_with_mfa,
    logout,
    refresh,
    signup,
    start_passkey_login,
    start_passkey_signup,
)
from latchkey_client.api.docs import get_open_api  # noqa: E402
from latchkey_client.api.mfa import confirm_totp, disable_totp, enrol_totp  # noqa: E402
from latchkey_client.api.passkeys import (  # noqa: E402
    delete_passkey,
    finish_passkey_registration,
    list_passkeys,
    rename_passkey,
    start_passkey_registration,
)
from latchkey_client.api.recovery import forgot_password, reset_password, verify_email  # noqa: E402
from latchkey_client.api.sessions import list_sessions  # noqa: E402
from latchkey_client.models import (  # noqa: E402
    AuthenticationResponseJSON,
    ChangeEmailRequest,
    ConfirmTotpRequest,
    DisableTotpRequest,
    EnrolTotpRequest,
    FinishPasskeyLoginRequest,
    FinishPasskeyRegistrationRequest,
    FinishPasskeySignupRequest,
    ForgotPasswordRequest,
    LoginMfaRequest,
    LoginRequest,
    MailAccepted,
    Passkey,
    PasskeyCeremony,
    Problem,
    RecoveryCodes,
    RefreshRequest,
    RefreshTokenTransport,
    RegistrationResponseJSON,
    RenamePasskeyRequest,
    ResetPasswordRequest,
    Session,
    SignupRequest,
    StartPasskeySignupRequest,
    TokenResponse,
    TotpEnrolment,
    User,
    UserMfaItem,
    VerifyEmailRequest,
)
from latchkey_client.types import Response  # noqa: E402

failures: list[str] = []
passed = 0


def check(cond: bool, what: str, detail: object = "") -> bool:
    global passed
    if cond:
        passed += 1
        print(f"ok   {what}")
    else:
        failures.append(what)
        print(f"FAIL {what}" + (f": {detail}" if detail != "" else ""))
    return cond


def body_of(resp: Response[Any]) -> str:
    return f"status {int(resp.status_code)}, body {resp.content[:300]!r}"


def is_aware(ts: object) -> bool:
    return isinstance(ts, datetime.datetime) and ts.utcoffset() is not None


def is_problem(resp: Response[Any], status: int, code: str, what: str) -> Problem | None:
    """Checks that `resp` is a `status` Problem with `code`; answers the Problem."""
    check(resp.status_code == status, f"{what} answers {status}", body_of(resp))
    problem = resp.parsed
    if not check(isinstance(problem, Problem), f"the {what} body parses as Problem", problem):
        return None
    assert isinstance(problem, Problem)
    check(problem.code == code, f"the {what} problem code is {code}", problem.code)
    return problem


# --- mailed codes, read from the server's log -------------------------------------------
# Without LATCHKEY_SMTP_URL the server logs each message at info: one event that names the
# recipient (`to=ada@example.com`, or `"to":"ada@example.com"` in the JSON format) and holds
# the text, where a code stands on a line of its own. The pretty format may colour the
# field names; an event's multi-line text runs on until the next event's timestamp.
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
EVENT_START = re.compile(r"^(?=\d{4}-\d{2}-\d{2}T\d{2}:\d{2}|\{)", re.MULTILINE)
CODE_LINE = re.compile(r"(?:^|\\n|\n)\s*Your code: ([0-9A-HJKMNP-TV-Z]{8})(?![0-9A-Za-z])")


def mailed_codes(log_path: str, recipient: str) -> list[str]:
    """The codes mailed to `recipient` so far, oldest first."""
    try:
        text = ANSI.sub("", Path(log_path).read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return []
    to = re.compile(r"(?:\bto=|\"to\":\s*\")" + re.escape(recipient) + r"(?=[\s\"]|$)", re.IGNORECASE)
    codes = []
    for event in EVENT_START.split(text):
        if event.startswith("{"):
            try:
                fields = json.loads(event)
            except ValueError:
                fields = None
            if isinstance(fields, dict):
                if str(fields.get("to", "")).lower() == recipient.lower():
                    codes += CODE_LINE.findall(str(fields.get("text", "")))
                continue
        if to.search(event):
            codes += CODE_LINE.findall(event)
    return codes


def wait_for_code(log_path: str | None, recipient: str, seen: int, what: str) -> str | None:
    """Waits up to 10 s for a code mailed to `recipient` after the first `seen` ones."""
    if not check(bool(log_path), f"{what}: the server log is known", "set LATCHKEY_SERVER_LOG"):
        return None
    assert log_path is not None
    deadline = time.monotonic() + 10
    while True:
        codes = mailed_codes(log_path, recipient)
        if len(codes) > seen or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if not check(len(codes) > seen, f"{what}: a new code for {recipient} is in the log", codes):
        return None
    return codes[-1]


def wrong_code(code: str) -> str:
    """A code of the right form that is not `code`."""
    return "00000000" if code != "00000000" else "11111111"


# --- TOTP (RFC 6238), as an authenticator app computes it ---------------------------------
# HMAC-SHA-1 over the 30-second step number, dynamic truncation (RFC 4226), 6 digits.
TOTP_STEP_SECONDS = 30


def hotp(key: bytes, counter: int, digits: int = 6) -> str:
    mac = hmac.new(key, counter.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def totp_step(unix_time: float | None = None) -> int:
    """The step a moment (now, by default) falls in."""
    return int(time.time() if unix_time is None else unix_time) // TOTP_STEP_SECONDS


def totp(key: bytes, step: int, digits: int = 6) -> str:
    """The code of one step."""
    return hotp(key, step, digits)


def base32_secret(secret: str) -> bytes:
    """The key of a secret given in base32 without padding (RFC 4648)."""
    return base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))


def wrong_totp(key: bytes) -> str:
    """Six digits that are no code of `key` for any step near now."""
    now = totp_step()
    near = {totp(key, step) for step in range(now - 3, now + 4)}
    return next(c for c in (f"{d}" * 6 for d in range(10)) if c not in near)


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (the smoke only reads what the server put in it)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def amr_of(token: str) -> object:
    try:
        return jwt_claims(token).get("amr")
    except (IndexError, ValueError) as err:
        return f"undecodable: {err}"


# --- a software passkey (WebAuthn L3 JSON, as a browser's credential.toJSON() gives it) ----
def b64url(data: bytes) -> str:
    """base64url without padding, as WebAuthn's JSON forms write binary values."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def cbor(value: int | str | bytes | dict[Any, Any]) -> bytes:
    """CBOR (RFC 8949), only the types an attestation object and a COSE key use. Map entries
    are written in the order given: the callers give CTAP2's canonical order."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        size = 1 if n < 0x100 else 2 if n < 0x10000 else 4
        return bytes([major << 5 | {1: 24, 2: 25, 4: 26}[size]]) + n.to_bytes(size, "big")

    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())


# Authenticator data flags (WebAuthn §6.1): user present, user verified, attested data.
FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40


class SoftPasskey:
    """One ES256 passkey, as a platform authenticator holds it: a discoverable credential that
    verifies its user, with a counter that moves on at each use."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.credential_id = os.urandom(16)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.counter = 0
        # The user handle of the registration's options, given back at each login: a login
        # that names no account is how the server finds it.
        self.user_handle = ""

    def _auth_data(self, rp_id: str, flags: int, attested: bytes = b"") -> bytes:
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + self.counter.to_bytes(4, "big") + attested

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        # The challenge goes back as the options gave it (base64url): the server compares it so.
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}).encode()

    def register(self, options: dict[str, Any]) -> dict[str, Any]:
        """The answer of navigator.credentials.create(), with attestation "none" (nothing
        vouches for the authenticator's make), as synced passkeys answer."""
        self.user_handle = options["user"]["id"]
        public = self.key.public_key().public_numbers()
        # COSE_Key (RFC 9053): kty EC2, alg ES256, crv P-256, x, y.
        cose_key = cbor({1: 2, 3: -7, -1: 1, -2: public.x.to_bytes(32, "big"), -3: public.y.to_bytes(32, "big")})
        attested = bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id + cose_key  # AAGUID 0
        auth_data = self._auth_data(options["rp"]["id"], FLAG_UP | FLAG_UV | FLAG_AT, attested)
        attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], self.origin)
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {"credProps": {"rk": True}},
        }

    def login(self, options: dict[str, Any], origin: str | None = None) -> dict[str, Any]:
        """The answer of navigator.credentials.get(); `origin` stands in for a page elsewhere."""
        self.counter += 1
        auth_data = self._auth_data(options["rpId"], FLAG_UP | FLAG_UV)
        client_data = self._client_data("webauthn.get", options["challenge"], origin or self.origin)
        # ECDSA signatures come DER-encoded from `cryptography`, as WebAuthn wants them.
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": self.user_handle,
            },
            "clientExtensionResults": {},
        }


def main() -> int:
    base_url = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LATCHKEY_URL", "")).rstrip("/")
    if not base_url:
        print("usage: smoke.py BASE_URL (or set LATCHKEY_URL)", file=sys.stderr)
        return 2
    print(f"python client smoke against {base_url}")
    started = time.monotonic()

    account_flow(base_url)
    mfa_flow(base_url)
    passkey_flow(base_url)
    return finish(started)


def account_flow(base_url: str) -> None:
    """signup -> me -> refresh -> sessions -> logout, the cookie transport, then the mailed
    codes. Returns early where a failure leaves nothing to go on (the failure is counted)."""
    timeout = httpx.Timeout(10.0)
    anon = Client(base_url=base_url, timeout=timeout, raise_on_unexpected_status=True)
    tag = uuid.uuid4().hex[:12]
    email = f"py-smoke-{tag}@example.com"
    username = f"py_{tag}"
    password = f"py smoke {uuid.uuid4().hex}"
    server_log = os.environ.get("LATCHKEY_SERVER_LOG") or None

    # --- signup ---------------------------------------------------------------------
    resp = signup.sync_detailed(
        client=anon, body=SignupRequest(email=email.upper(), password=password, username=username)
    )
    if not check(resp.status_code == 201, "signup answers 201", body_of(resp)):
        return
    tokens = resp.parsed
    if not check(isinstance(tokens, TokenResponse), "signup body parses as TokenResponse", tokens):
        return
    assert isinstance(tokens, TokenResponse)
    check(tokens.token_type == "Bearer", "signup token_type is Bearer", tokens.token_type)
    check(tokens.expires_in > 0, "signup expires_in is positive", tokens.expires_in)
    check(tokens.access_token.count(".") == 2, "signup access_token is a JWT", tokens.access_token[:20])
    # `None` only with the cookie transport (below); the default is the body.
    refresh_token = tokens.refresh_token
    if not check(isinstance(refresh_token, str), "signup has the refresh_token in the body", refresh_token):
        return
    assert isinstance(refresh_token, str)
    check(len(refresh_token) >= 43, "signup refresh_token is long enough", len(refresh_token))
    check(isinstance(tokens.user, User), "signup user parses as User", tokens.user)
    check(tokens.user.email == email, "signup user.email is the email, lowercased", tokens.user.email)
    check(tokens.user.username == username, "signup user.username is the username", tokens.user.username)
    check(isinstance(tokens.user.id, uuid.UUID), "signup user.id is a UUID", tokens.user.id)
    check(is_aware(tokens.user.created_at), "signup user.created_at is a timestamp with offset", tokens.user.created_at)
    check(tokens.user.email_verified is False, "signup user.email_verified is false", tokens.user.email_verified)
    check(
        resp.headers.get("cache-control") == "no-store",
        "signup has Cache-Control: no-store",
        resp.headers.get("cache-control"),
    )
    user_id = tokens.user.id

    # --- me -------------------------------------------------------------------------
    authed = AuthenticatedClient(
        base_url=base_url, token=tokens.access_token, timeout=timeout, raise_on_unexpected_status=True
    )
    resp_me = get_me.sync_detailed(client=authed)
    check(resp_me.status_code == 200, "GET /me answers 200", body_of(resp_me))
    me = resp_me.parsed
    if check(isinstance(me, User), "GET /me body parses as User", me):
        assert isinstance(me, User)
        check(me.email == email, "GET /me email matches", me.email)
        check(me.id == user_id, "GET /me id matches the signup's user", me.id)
        check(me.username == username, "GET /me username matches", me.username)
        check(me.email_verified is False, "GET /me email_verified is false", me.email_verified)

    # --- verify the email with the code the signup mailed ------------------------------
    signup_code = wait_for_code(server_log, email, 0, "signup mailed a verification code")
    if signup_code is not None:
        resp_vw = verify_email.sync_detailed(
            client=anon, body=VerifyEmailRequest(email=email, code=wrong_code(signup_code))
        )
        is_problem(resp_vw, 400, "invalid_code", "POST /email/verify with a wrong code")
        resp_v = verify_email.sync_detailed(client=anon, body=VerifyEmailRequest(email=email, code=signup_code))
        check(resp_v.status_code == 200, "POST /email/verify with the mailed code answers 200", body_of(resp_v))
        check(
            resp_v.headers.get("cache-control") == "no-store",
            "POST /email/verify has Cache-Control: no-store",
            resp_v.headers.get("cache-control"),
        )
        verified = resp_v.parsed
        if check(isinstance(verified, User), "POST /email/verify body parses as User", verified):
            assert isinstance(verified, User)
            check(verified.email_verified is True, "POST /email/verify: email_verified is true", verified.email_verified)
            check(verified.id == user_id, "POST /email/verify is for the signup's user", verified.id)
            check(verified.email == email, "POST /email/verify keeps the email", verified.email)
        resp_sv = send_email_verification.sync_detailed(client=authed)
        is_problem(resp_sv, 409, "email_already_verified", "POST /me/email/verification once verified")

    # --- refresh --------------------------------------------------------------------
    resp_rf = refresh.sync_detailed(client=anon, body=RefreshRequest(refresh_token=refresh_token))
    check(resp_rf.status_code == 200, "POST /refresh answers 200", body_of(resp_rf))
    rotated = resp_rf.parsed
    if not check(isinstance(rotated, TokenResponse), "POST /refresh body parses as TokenResponse", rotated):
        return
    assert isinstance(rotated, TokenResponse)
    check(rotated.refresh_token != tokens.refresh_token, "POST /refresh gives a new refresh token")
    check(bool(rotated.access_token), "POST /refresh gives an access token")
    check(rotated.user.id == user_id, "POST /refresh is for the same user", rotated.user.id)
    authed = AuthenticatedClient(
        base_url=base_url, token=rotated.access_token, timeout=timeout, raise_on_unexpected_status=True
    )

    # --- sessions -------------------------------------------------------------------
    resp_s = list_sessions.sync_detailed(client=authed)
    check(resp_s.status_code == 200, "GET /sessions answers 200", body_of(resp_s))
    sessions = resp_s.parsed
    if check(
        isinstance(sessions, list) and all(isinstance(s, Session) for s in sessions),
        "GET /sessions body parses as list[Session]",
        sessions,
    ):
        assert isinstance(sessions, list)
        check(len(sessions) == 1, "GET /sessions lists exactly one session", len(sessions))
        if sessions:
            s = sessions[0]
            check(s.current is True, "the session is current", s.current)
            check(isinstance(s.id, uuid.UUID), "the session id is a UUID", s.id)
            check(
                all(is_aware(t) for t in (s.created_at, s.last_used_at, s.expires_at)),
                "the session timestamps parse with offsets",
            )
            check(s.expires_at > s.created_at, "the session expires after it was created")

    # --- logout ---------------------------------------------------------------------
    # No body: the default scope, `local`.
    resp_lo = logout.sync_detailed(client=authed)
    check(resp_lo.status_code == 204, "POST /logout answers 204", body_of(resp_lo))

    # --- me after logout ------------------------------------------------------------
    resp_me2 = get_me.sync_detailed(client=authed)
    check(resp_me2.status_code == 401, "GET /me after logout answers 401", body_of(resp_me2))
    problem = resp_me2.parsed
    if check(isinstance(problem, Problem), "the 401 body parses as Problem", problem):
        assert isinstance(problem, Problem)
        check(problem.code == "invalid_token", "the 401 problem code is invalid_token", problem.code)
        check(problem.status == 401, "the 401 problem status is 401", problem.status)
    check(
        'error="invalid_token"' in resp_me2.headers.get("www-authenticate", ""),
        'the 401 has WWW-Authenticate with error="invalid_token"',
        resp_me2.headers.get("www-authenticate"),
    )

    # --- an error path: a weak password ---------------------------------------------
    resp_w = signup.sync_detailed(
        client=anon,
        body=SignupRequest(email=f"py-smoke-weak-{tag}@example.com", password="short"),
    )
    check(resp_w.status_code == 422, "signup with a weak password answers 422", body_of(resp_w))
    weak = resp_w.parsed
    if check(isinstance(weak, Problem), "the 422 body parses as Problem", weak):
        assert isinstance(weak, Problem)
        check(weak.code == "validation_failed", "the 422 problem code is validation_failed", weak.code)
        errors = weak.errors if isinstance(weak.errors, list) else []
        check(len(errors) > 0, "the 422 problem has errors", weak.errors)
        check(
            any(e.field == "password" for e in errors),
            "the 422 errors name the password field",
            [(e.field, e.code) for e in errors],
        )

    # --- the document itself, as text (clients/python/config.yaml maps its YAML) -----
    resp_doc = get_open_api.sync_detailed(client=anon)
    check(resp_doc.status_code == 200, "GET /openapi.yaml answers 200", resp_doc.status_code)
    check(
        isinstance(resp_doc.parsed, str) and resp_doc.parsed.startswith("openapi: 3.1"),
        "GET /openapi.yaml parses as the document's text",
        str(resp_doc.parsed)[:40],
    )

    # --- the cookie transport, as a browser app uses it ------------------------------
    # (A browser keeps and sends the cookie itself; here the smoke carries it by hand.)
    resp_ck = signup.sync_detailed(
        client=anon,
        body=SignupRequest(
            email=f"py-smoke-cookie-{tag}@example.com",
            password=password,
            refresh_token_transport=RefreshTokenTransport.COOKIE,
        ),
    )
    check(resp_ck.status_code == 201, "signup with the cookie transport answers 201", body_of(resp_ck))
    cookie_tokens = resp_ck.parsed
    check(
        isinstance(cookie_tokens, TokenResponse) and cookie_tokens.refresh_token is None,
        "with the cookie transport refresh_token is None",
        cookie_tokens,
    )
    set_cookie = resp_ck.headers.get("set-cookie", "")
    check(
        set_cookie.startswith("__Host-latchkey_refresh=") and "HttpOnly" in set_cookie,
        "signup sets the __Host-latchkey_refresh cookie",
        set_cookie,
    )
    name, _, value = set_cookie.split(";")[0].partition("=")
    with_cookie = Client(base_url=base_url, timeout=timeout, cookies={name: value}, raise_on_unexpected_status=True)
    resp_rc = refresh.sync_detailed(client=with_cookie, body=RefreshRequest())
    check(resp_rc.status_code == 200, "POST /refresh with only the cookie answers 200", body_of(resp_rc))
    check(
        isinstance(resp_rc.parsed, TokenResponse) and resp_rc.parsed.refresh_token is None,
        "POST /refresh with the cookie keeps refresh_token None",
        resp_rc.parsed,
    )
    next_cookie = resp_rc.headers.get("set-cookie", "").split(";")[0]
    check(
        next_cookie.startswith("__Host-latchkey_refresh=") and next_cookie.partition("=")[2] != value,
        "POST /refresh with the cookie sets the next cookie",
        next_cookie,
    )

    # --- recovery: forgot -> reset with the mailed code -> the new password ------------
    resp_li = login.sync_detailed(client=anon, body=LoginRequest(email=email, password=password))
    check(resp_li.status_code == 200, "login with the password answers 200", body_of(resp_li))
    before_reset = resp_li.parsed
    if not check(isinstance(before_reset, TokenResponse), "login body parses as TokenResponse", before_reset):
        return
    assert isinstance(before_reset, TokenResponse)
    check(before_reset.user.id == user_id, "login is for the signup's user", before_reset.user.id)
    old_session = AuthenticatedClient(
        base_url=base_url, token=before_reset.access_token, timeout=timeout, raise_on_unexpected_status=True
    )

    codes_before = len(mailed_codes(server_log, email)) if server_log else 0
    resp_fp = forgot_password.sync_detailed(client=anon, body=ForgotPasswordRequest(email=email))
    check(resp_fp.status_code == 202, "POST /password/forgot answers 202", body_of(resp_fp))
    accepted = resp_fp.parsed
    if check(isinstance(accepted, MailAccepted), "POST /password/forgot body parses as MailAccepted", accepted):
        assert isinstance(accepted, MailAccepted)
        check(accepted.status == "sent_if_registered", "POST /password/forgot status is sent_if_registered", accepted.status)
    resp_fu = forgot_password.sync_detailed(
        client=anon, body=ForgotPasswordRequest(email=f"py-smoke-nobody-{tag}@example.com")
    )
    check(resp_fu.status_code == 202, "POST /password/forgot for an unknown email answers 202", body_of(resp_fu))
    check(
        isinstance(resp_fu.parsed, MailAccepted)
        and isinstance(accepted, MailAccepted)
        and resp_fu.parsed.to_dict() == accepted.to_dict(),
        "POST /password/forgot for an unknown email has the same body",
        resp_fu.parsed,
    )

    new_password = f"py smoke new {uuid.uuid4().hex}"
    reset_code = wait_for_code(server_log, email, codes_before, "forgot password mailed a reset code")
    if reset_code is None:
        return
    resp_rw = reset_password.sync_detailed(
        client=anon,
        body=ResetPasswordRequest(email=email, code=wrong_code(reset_code), new_password=new_password),
    )
    is_problem(resp_rw, 400, "invalid_code", "POST /password/reset with a wrong code")
    resp_rs = reset_password.sync_detailed(
        client=anon, body=ResetPasswordRequest(email=email, code=reset_code, new_password="short")
    )
    short = is_problem(resp_rs, 422, "validation_failed", "POST /password/reset with a short password")
    if short is not None:
        errors = short.errors if isinstance(short.errors, list) else []
        check(
            any(e.field == "new_password" for e in errors),
            "the 422 errors name the new_password field",
            [(e.field, e.code) for e in errors],
        )
    resp_r = reset_password.sync_detailed(
        client=anon, body=ResetPasswordRequest(email=email, code=reset_code, new_password=new_password)
    )
    check(resp_r.status_code == 204, "POST /password/reset with the mailed code answers 204", body_of(resp_r))

    resp_old = get_me.sync_detailed(client=old_session)
    is_problem(resp_old, 401, "invalid_token", "GET /me with the token from before the reset")
    resp_lo_old = login.sync_detailed(client=anon, body=LoginRequest(email=email, password=password))
    is_problem(resp_lo_old, 401, "invalid_credentials", "login with the old password")
    resp_ln = login.sync_detailed(client=anon, body=LoginRequest(email=email, password=new_password))
    check(resp_ln.status_code == 200, "login with the new password answers 200", body_of(resp_ln))
    after_reset = resp_ln.parsed
    if not check(isinstance(after_reset, TokenResponse), "login body parses as TokenResponse", after_reset):
        return
    assert isinstance(after_reset, TokenResponse)
    check(after_reset.user.id == user_id, "login with the new password is for the same user", after_reset.user.id)
    new_session = AuthenticatedClient(
        base_url=base_url, token=after_reset.access_token, timeout=timeout, raise_on_unexpected_status=True
    )

    # --- change the email: a code to the new address, verified --------------------------
    new_email = f"py-smoke-moved-{tag}@example.com"
    resp_ce = change_email.sync_detailed(
        client=new_session, body=ChangeEmailRequest(new_email=new_email, password=new_password)
    )
    check(resp_ce.status_code == 202, "POST /me/email answers 202", body_of(resp_ce))
    change = resp_ce.parsed
    if check(isinstance(change, MailAccepted), "POST /me/email body parses as MailAccepted", change):
        assert isinstance(change, MailAccepted)
        check(change.status == "sent", "POST /me/email status is sent", change.status)
    change_code = wait_for_code(server_log, new_email, 0, "the email change mailed a code to the new address")
    if change_code is not None:
        resp_vc = verify_email.sync_detailed(client=anon, body=VerifyEmailRequest(email=new_email, code=change_code))
        check(resp_vc.status_code == 200, "POST /email/verify for the new email answers 200", body_of(resp_vc))
        moved = resp_vc.parsed
        if check(isinstance(moved, User), "POST /email/verify for the new email parses as User", moved):
            assert isinstance(moved, User)
            check(moved.email == new_email, "the account now has the new email", moved.email)
            check(moved.email_verified is True, "the new email is verified", moved.email_verified)
            check(moved.id == user_id, "the new email is the same account's", moved.id)


def mfa_flow(base_url: str) -> None:
    """The second factor: sign up; enrol TOTP (secret, otpauth URI, QR) and confirm it with
    the current code (10 recovery codes); GET /me says mfa [totp]; a login answers 403
    mfa_required with an mfa_token; /login/mfa refuses the code used at confirm (a replay)
    and takes the next step's (amr [pwd, otp]); a second login: a wrong code 400, then a
    recovery code 200 (its mfa_token then used up: 401); disable with the password and an
    unused recovery code (204); GET /me says mfa []; a login answers tokens directly again.
    Returns early where a failure leaves nothing to go on (the failure is counted)."""
    # The maths first, against RFC 6238's SHA-1 vectors (ASCII key "12345678901234567890",
    # 8 digits) and RFC 4226's 6-digit HOTP vector for counter 0: a wrong function would
    # otherwise show up only as refused codes.
    rfc_key = b"12345678901234567890"
    check(totp(rfc_key, totp_step(59), 8) == "94287082", "TOTP: RFC 6238 vector T=59", totp(rfc_key, totp_step(59), 8))
    check(
        totp(rfc_key, totp_step(1111111109), 8) == "07081804",
        "TOTP: RFC 6238 vector T=1111111109",
        totp(rfc_key, totp_step(1111111109), 8),
    )
    check(hotp(rfc_key, 0) == "755224", "TOTP: RFC 4226 6-digit vector, counter 0", hotp(rfc_key, 0))

    timeout = httpx.Timeout(10.0)
    anon = Client(base_url=base_url, timeout=timeout, raise_on_unexpected_status=True)

    def session(token: str) -> AuthenticatedClient:
        return AuthenticatedClient(base_url=base_url, token=token, timeout=timeout, raise_on_unexpected_status=True)

    tag = uuid.uuid4().hex[:12]
    email = f"py-smoke-mfa-{tag}@example.com"
    password = f"py smoke mfa {uuid.uuid4().hex}"
    resp_su = signup.sync_detailed(client=anon, body=SignupRequest(email=email, password=password))
    check(resp_su.status_code == 201, "MFA: signup answers 201", body_of(resp_su))
    signed_up = resp_su.parsed
    if not check(isinstance(signed_up, TokenResponse), "MFA: signup body parses as TokenResponse", signed_up):
        return
    assert isinstance(signed_up, TokenResponse)
    check(signed_up.user.mfa == [], "MFA: a new account has mfa []", signed_up.user.mfa)
    amr = amr_of(signed_up.access_token)
    check(amr == ["pwd"], "MFA: the signup's access token has amr [pwd]", amr)
    user_id = signed_up.user.id
    first = session(signed_up.access_token)

    # --- enrol: a secret for an authenticator app ------------------------------------
    resp_en = enrol_totp.sync_detailed(client=first, body=EnrolTotpRequest(password=password))
    check(resp_en.status_code == 200, "POST /me/mfa/totp answers 200", body_of(resp_en))
    check(
        resp_en.headers.get("cache-control") == "no-store",
        "POST /me/mfa/totp has Cache-Control: no-store",
        resp_en.headers.get("cache-control"),
    )
    enrolment = resp_en.parsed
    if not check(isinstance(enrolment, TotpEnrolment), "POST /me/mfa/totp body parses as TotpEnrolment", enrolment):
        return
    assert isinstance(enrolment, TotpEnrolment)
    try:
        key = base32_secret(enrolment.secret)
    except ValueError as err:
        check(False, "the TOTP secret is base32", err)
        return
    check(len(key) >= 16, "the TOTP secret has at least 128 bits", len(key) * 8)
    uri = urlsplit(enrolment.otpauth_uri)
    query = parse_qs(uri.query)
    check(
        uri.scheme == "otpauth" and uri.netloc == "totp",
        "the otpauth_uri is otpauth://totp/",
        enrolment.otpauth_uri[:30],
    )
    check(query.get("secret") == [enrolment.secret], "the otpauth_uri holds the secret")
    check(
        query.get("digits", ["6"]) == ["6"] and query.get("period", ["30"]) == ["30"]
        and query.get("algorithm", ["SHA1"]) == ["SHA1"],
        "the otpauth_uri says SHA-1, 6 digits, 30 s (or leaves them to their defaults)",
        {k: v for k, v in query.items() if k != "secret"},
    )
    check("<svg" in enrolment.qr_svg, "qr_svg is an SVG document", enrolment.qr_svg[:60])

    # --- confirm with the current code: the recovery codes ----------------------------
    confirm_step = totp_step()
    resp_cf = confirm_totp.sync_detailed(client=first, body=ConfirmTotpRequest(code=totp(key, confirm_step)))
    check(resp_cf.status_code == 200, "POST /me/mfa/totp/confirm with the current code answers 200", body_of(resp_cf))
    check(
        resp_cf.headers.get("cache-control") == "no-store",
        "POST /me/mfa/totp/confirm has Cache-Control: no-store",
        resp_cf.headers.get("cache-control"),
    )
    confirmed = resp_cf.parsed
    if not check(isinstance(confirmed, RecoveryCodes), "POST /me/mfa/totp/confirm parses as RecoveryCodes", confirmed):
        return
    assert isinstance(confirmed, RecoveryCodes)
    recovery_codes = confirmed.recovery_codes
    check(len(recovery_codes) == 10, "confirm answers 10 recovery codes", len(recovery_codes))
    check(len(set(recovery_codes)) == len(recovery_codes), "the recovery codes are all different")
    check(
        all(isinstance(c, str) and re.fullmatch(r"[0-9A-Z]{5}-[0-9A-Z]{5}", c) for c in recovery_codes),
        "the recovery codes look like XXXXX-XXXXX",
        recovery_codes[:2],
    )
    if len(recovery_codes) < 2:
        return

    resp_me = get_me.sync_detailed(client=first)
    check(resp_me.status_code == 200, "MFA: GET /me answers 200", body_of(resp_me))
    me = resp_me.parsed
    if check(isinstance(me, User), "MFA: GET /me body parses as User", me):
        assert isinstance(me, User)
        check(me.mfa == [UserMfaItem.TOTP], 'GET /me says mfa ["totp"] once confirmed', me.mfa)

    # --- a login now owes a second factor ----------------------------------------------
    resp_l1 = login.sync_detailed(client=anon, body=LoginRequest(email=email, password=password))
    required = is_problem(resp_l1, 403, "mfa_required", "login to an account with TOTP")
    if required is None:
        return
    # Problem.mfa_token is optional in the schema (it is there only with mfa_required), so
    # the client types it `str | Unset`.
    mfa_token = required.mfa_token
    if not check(
        isinstance(mfa_token, str) and len(mfa_token) >= 32, "the mfa_required problem has an mfa_token", mfa_token
    ):
        return
    assert isinstance(mfa_token, str)
    check(required.status == 403, "the mfa_required problem status is 403", required.status)

    # The code of the step used at confirm is a replay: refused (it counts as one wrong code
    # against this mfa_token, which allows five).
    resp_rp = login_with_mfa.sync_detailed(
        client=anon, body=LoginMfaRequest(mfa_token=mfa_token, code=totp(key, confirm_step))
    )
    is_problem(resp_rp, 400, "invalid_mfa_code", "POST /login/mfa with the code already used at confirm")
    # The next step's code: the current one by now, or one step ahead (drift is accepted).
    # Not `refresh_token_transport=None`: the schema allows null there, but the server
    # answers it 400 malformed_request; left out (UNSET) it is `body`.
    resp_m1 = login_with_mfa.sync_detailed(
        client=anon, body=LoginMfaRequest(mfa_token=mfa_token, code=totp(key, confirm_step + 1))
    )
    check(resp_m1.status_code == 200, "POST /login/mfa with the next step's code answers 200", body_of(resp_m1))
    check(
        resp_m1.headers.get("cache-control") == "no-store",
        "POST /login/mfa has Cache-Control: no-store",
        resp_m1.headers.get("cache-control"),
    )
    with_code = resp_m1.parsed
    if not check(isinstance(with_code, TokenResponse), "POST /login/mfa body parses as TokenResponse", with_code):
        return
    assert isinstance(with_code, TokenResponse)
    check(with_code.user.id == user_id, "POST /login/mfa is for the account", with_code.user.id)
    check(with_code.user.mfa == [UserMfaItem.TOTP], "POST /login/mfa user.mfa is [totp]", with_code.user.mfa)
    check(
        isinstance(with_code.refresh_token, str),
        "POST /login/mfa has the refresh_token in the body",
        with_code.refresh_token,
    )
    amr = amr_of(with_code.access_token)
    check(amr == ["pwd", "otp"], "the access token of POST /login/mfa has amr [pwd, otp]", amr)
    second = session(with_code.access_token)
    resp_me2 = get_me.sync_detailed(client=second)
    check(resp_me2.status_code == 200, "GET /me with the token of POST /login/mfa answers 200", body_of(resp_me2))

    # --- a second login: a wrong code, then a recovery code ------------------------------
    resp_l2 = login.sync_detailed(client=anon, body=LoginRequest(email=email, password=password))
    required2 = is_problem(resp_l2, 403, "mfa_required", "second login to the account")
    token2 = required2.mfa_token if required2 is not None else None
    if not check(isinstance(token2, str) and token2 != mfa_token, "the second login has a new mfa_token", token2):
        return
    assert isinstance(token2, str)
    resp_wc = login_with_mfa.sync_detailed(client=anon, body=LoginMfaRequest(mfa_token=token2, code=wrong_totp(key)))
    is_problem(resp_wc, 400, "invalid_mfa_code", "POST /login/mfa with a wrong code")
    resp_m2 = login_with_mfa.sync_detailed(
        client=anon, body=LoginMfaRequest(mfa_token=token2, recovery_code=recovery_codes[0])
    )
    check(resp_m2.status_code == 200, "POST /login/mfa with a recovery code answers 200", body_of(resp_m2))
    with_recovery = resp_m2.parsed
    if check(
        isinstance(with_recovery, TokenResponse),
        "POST /login/mfa with a recovery code parses as TokenResponse",
        with_recovery,
    ):
        assert isinstance(with_recovery, TokenResponse)
        check(with_recovery.user.id == user_id, "the recovery code logs in to the account", with_recovery.user.id)
        amr = amr_of(with_recovery.access_token)
        check(amr == ["pwd", "otp"], "the access token of a recovery-code login has amr [pwd, otp]", amr)
    # A challenge is single use: its token is spent once it has logged in (refused before any
    # code is checked, so nothing is counted).
    resp_spent = login_with_mfa.sync_detailed(
        client=anon, body=LoginMfaRequest(mfa_token=token2, recovery_code=recovery_codes[1])
    )
    is_problem(resp_spent, 401, "invalid_mfa_token", "POST /login/mfa with an mfa_token already used")

    # --- disable with the password and an unused recovery code ---------------------------
    resp_d = disable_totp.sync_detailed(
        client=second, body=DisableTotpRequest(password=password, code=recovery_codes[1])
    )
    check(resp_d.status_code == 204, "DELETE /me/mfa/totp with a recovery code answers 204", body_of(resp_d))
    resp_me3 = get_me.sync_detailed(client=second)
    me3 = resp_me3.parsed
    if check(isinstance(me3, User), "GET /me after disabling parses as User", body_of(resp_me3)):
        assert isinstance(me3, User)
        check(me3.mfa == [], "GET /me says mfa [] once disabled", me3.mfa)
    resp_l3 = login.sync_detailed(client=anon, body=LoginRequest(email=email, password=password))
    check(resp_l3.status_code == 200, "login once TOTP is off answers 200", body_of(resp_l3))
    plain = resp_l3.parsed
    if check(isinstance(plain, TokenResponse), "login once TOTP is off answers tokens directly", plain):
        assert isinstance(plain, TokenResponse)
        check(plain.user.mfa == [], "its user.mfa is []", plain.user.mfa)
        amr = amr_of(plain.access_token)
        check(amr == ["pwd"], "its access token has amr [pwd]", amr)


def passkey_flow(base_url: str) -> None:
    """Passkeys, with the software passkey above: an account signs up with a password, adds a
    passkey (start -> finish 201), lists it, renames it, logs out, and logs in with it naming
    no account (amr [hwk]); the same answer again is refused (400 invalid_ceremony), and so is
    one signed for another origin (401 invalid_credentials); the passkey is removed (204) and
    logs in no more. A second account signs up with a passkey alone (201, amr [hwk]): its only
    passkey cannot be removed (409 last_credential), and no password logs in to it (401).
    Returns early where a failure leaves nothing to go on (the failure is counted)."""
    timeout = httpx.Timeout(10.0)
    anon = Client(base_url=base_url, timeout=timeout, raise_on_unexpected_status=True)

    def session(token: str) -> AuthenticatedClient:
        return AuthenticatedClient(base_url=base_url, token=token, timeout=timeout, raise_on_unexpected_status=True)

    def options_of(resp: Response[Any], what: str) -> tuple[str, dict[str, Any]] | None:
        """The ceremony id and options of a start's answer, the options as the JSON a browser
        would parse (either kind of the contract's union)."""
        check(resp.status_code == 200, f"{what} answers 200", body_of(resp))
        ceremony = resp.parsed
        if not check(isinstance(ceremony, PasskeyCeremony), f"{what} body parses as PasskeyCeremony", ceremony):
            return None
        assert isinstance(ceremony, PasskeyCeremony)
        return ceremony.ceremony_id, ceremony.options.to_dict()

    # The origin the browser would report: the server's public URL (.ci/clients.sh sets it to
    # http://localhost:<port>; the server's default is http://localhost:8080). Its host is the
    # RP id; an IP address there turns passkeys off.
    public = urlsplit(os.environ.get("LATCHKEY_PUBLIC_URL") or "http://localhost:8080")
    origin = f"{public.scheme}://{public.netloc}"
    rp_id = public.hostname or ""
    tag = uuid.uuid4().hex[:12]
    email = f"py-smoke-pk-{tag}@example.com"
    password = f"py smoke passkey {uuid.uuid4().hex}"

    resp_su = signup.sync_detailed(client=anon, body=SignupRequest(email=email, password=password))
    check(resp_su.status_code == 201, "passkeys: signup answers 201", body_of(resp_su))
    signed_up = resp_su.parsed
    if not isinstance(signed_up, TokenResponse):
        return
    user_id = signed_up.user.id
    first = session(signed_up.access_token)

    # --- register ---------------------------------------------------------------------
    started = options_of(start_passkey_registration.sync_detailed(client=first), "POST /me/passkeys/register/start")
    if started is None:
        return
    ceremony_id, creation = started
    check(creation.get("rp", {}).get("id") == rp_id, f"the creation options' rp.id is {rp_id}", creation.get("rp"))
    selection = creation.get("authenticatorSelection", {})
    check(
        selection.get("residentKey") == "required" and selection.get("userVerification") == "required",
        "the creation options require a discoverable credential that verifies its user",
        selection,
    )
    check(
        isinstance(creation.get("challenge"), str) and isinstance(creation.get("user", {}).get("id"), str),
        "the creation options have a challenge and a user id",
    )
    authenticator = SoftPasskey(origin)
    resp_rf = finish_passkey_registration.sync_detailed(
        client=first,
        body=FinishPasskeyRegistrationRequest(
            ceremony_id=ceremony_id,
            credential=RegistrationResponseJSON.from_dict(authenticator.register(creation)),
            name="Python smoke key",
        ),
    )
    check(resp_rf.status_code == 201, "POST /me/passkeys/register/finish answers 201", body_of(resp_rf))
    added = resp_rf.parsed
    if not check(isinstance(added, Passkey), "POST /me/passkeys/register/finish parses as Passkey", added):
        return
    assert isinstance(added, Passkey)
    check(added.name == "Python smoke key", "the passkey has the name given", added.name)
    check(
        is_aware(added.created_at) and added.last_used_at is None,
        "a new passkey has created_at and no last_used_at",
        (added.created_at, added.last_used_at),
    )

    resp_ls = list_passkeys.sync_detailed(client=first)
    check(resp_ls.status_code == 200, "GET /me/passkeys answers 200", body_of(resp_ls))
    listed = resp_ls.parsed if isinstance(resp_ls.parsed, list) else []
    check([p.id for p in listed] == [added.id], "GET /me/passkeys lists the passkey", listed)

    resp_rn = rename_passkey.sync_detailed(
        added.id, client=first, body=RenamePasskeyRequest(name="Python smoke key, renamed")
    )
    check(resp_rn.status_code == 200, "PATCH /me/passkeys/{id} answers 200", body_of(resp_rn))
    renamed = resp_rn.parsed
    check(
        isinstance(renamed, Passkey) and renamed.name == "Python smoke key, renamed" and renamed.id == added.id,
        "the passkey is renamed",
        renamed,
    )

    resp_lo = logout.sync_detailed(client=first)
    check(resp_lo.status_code == 204, "passkeys: POST /logout answers 204", body_of(resp_lo))

    # --- log in with it, naming no account ------------------------------------------------
    started = options_of(start_passkey_login.sync_detailed(client=anon), "POST /login/passkey/start")
    if started is None:
        return
    login_ceremony, request = started
    check(request.get("rpId") == rp_id, f"the request options' rpId is {rp_id}", request.get("rpId"))
    check(
        not request.get("allowCredentials"),
        "the request options list no credentials (a discoverable login)",
        request.get("allowCredentials"),
    )
    answer = FinishPasskeyLoginRequest(
        ceremony_id=login_ceremony,
        credential=AuthenticationResponseJSON.from_dict(authenticator.login(request)),
    )
    resp_lf = finish_passkey_login.sync_detailed(client=anon, body=answer)
    check(resp_lf.status_code == 200, "POST /login/passkey/finish answers 200", body_of(resp_lf))
    tokens = resp_lf.parsed
    if not check(isinstance(tokens, TokenResponse), "POST /login/passkey/finish parses as TokenResponse", tokens):
        return
    assert isinstance(tokens, TokenResponse)
    check(tokens.user.id == user_id, "the passkey logs in to its account", tokens.user.id)
    amr = amr_of(tokens.access_token)
    check(amr == ["hwk"], "the passkey login's access token has amr [hwk]", amr)
    check(isinstance(tokens.refresh_token, str), "the passkey login has the refresh_token in the body")
    second = session(tokens.access_token)
    used = list_passkeys.sync_detailed(client=second).parsed
    check(
        isinstance(used, list) and len(used) == 1 and is_aware(used[0].last_used_at),
        "the passkey's last_used_at is set by the login",
        used,
    )

    # --- attacks: the same answer again; an answer signed for another origin --------------
    resp_rp = finish_passkey_login.sync_detailed(client=anon, body=answer)
    is_problem(resp_rp, 400, "invalid_ceremony", "a replayed passkey login answer")
    started = options_of(start_passkey_login.sync_detailed(client=anon), "a second POST /login/passkey/start")
    if started is not None:
        phished = authenticator.login(started[1], origin="https://latchkey.example.net")
        resp_ph = finish_passkey_login.sync_detailed(
            client=anon,
            body=FinishPasskeyLoginRequest(
                ceremony_id=started[0], credential=AuthenticationResponseJSON.from_dict(phished)
            ),
        )
        is_problem(resp_ph, 401, "invalid_credentials", "a passkey login answer signed for another origin")

    # --- remove it: it logs in no more ----------------------------------------------------
    resp_rm = delete_passkey.sync_detailed(added.id, client=second)
    check(resp_rm.status_code == 204, "DELETE /me/passkeys/{id} answers 204", body_of(resp_rm))
    resp_none = list_passkeys.sync_detailed(client=second)
    check(resp_none.parsed == [], "GET /me/passkeys is empty once it is removed", body_of(resp_none))
    started = options_of(start_passkey_login.sync_detailed(client=anon), "a third POST /login/passkey/start")
    if started is not None:
        resp_gone = finish_passkey_login.sync_detailed(
            client=anon,
            body=FinishPasskeyLoginRequest(
                ceremony_id=started[0],
                credential=AuthenticationResponseJSON.from_dict(authenticator.login(started[1])),
            ),
        )
        is_problem(resp_gone, 401, "invalid_credentials", "a passkey login with the removed passkey")

    # --- an account with a passkey and no password ---------------------------------------
    only_email = f"py-smoke-pk-only-{tag}@example.com"
    started = options_of(
        start_passkey_signup.sync_detailed(
            client=anon, body=StartPasskeySignupRequest(email=only_email, username=f"pypk_{tag}")
        ),
        "POST /signup/passkey/start",
    )
    if started is None:
        return
    only_key = SoftPasskey(origin)
    resp_sf = finish_passkey_signup.sync_detailed(
        client=anon,
        body=FinishPasskeySignupRequest(
            ceremony_id=started[0],
            credential=RegistrationResponseJSON.from_dict(only_key.register(started[1])),
            name="Python phone",
        ),
    )
    check(resp_sf.status_code == 201, "POST /signup/passkey/finish answers 201", body_of(resp_sf))
    only = resp_sf.parsed
    if not check(isinstance(only, TokenResponse), "POST /signup/passkey/finish parses as TokenResponse", only):
        return
    assert isinstance(only, TokenResponse)
    check(only.user.email == only_email, "the passkey signup's account has the email", only.user.email)
    amr = amr_of(only.access_token)
    check(amr == ["hwk"], "the passkey signup's access token has amr [hwk]", amr)
    only_session = session(only.access_token)
    only_keys = list_passkeys.sync_detailed(client=only_session).parsed
    if check(
        isinstance(only_keys, list) and len(only_keys) == 1 and only_keys[0].name == "Python phone",
        "the passkey signup's account lists its passkey",
        only_keys,
    ):
        assert isinstance(only_keys, list)
        resp_last = delete_passkey.sync_detailed(only_keys[0].id, client=only_session)
        is_problem(resp_last, 409, "last_credential", "removing the only passkey of an account without a password")
    resp_pw = login.sync_detailed(client=anon, body=LoginRequest(email=only_email, password=password))
    is_problem(resp_pw, 401, "invalid_credentials", "a password login to an account without a password")


def finish(started: float) -> int:
    elapsed = time.monotonic() - started
    print(f"python client smoke took {elapsed:.1f}s")
    print(f"python: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
