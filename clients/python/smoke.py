#!/usr/bin/env python3
"""Drive a live Latchkey through the client that openapi-python-client generates from
openapi.yaml: signup -> me -> refresh -> sessions -> logout -> me (401), plus one 422 and
the refresh token in a cookie (signup, then refresh with only the cookie).

Usage: smoke.py [BASE_URL]   (default: $LATCHKEY_URL)

The generated package `latchkey_client` is imported from $LATCHKEY_PY_CLIENT_DIR, or from
clients/python/generated/ beside this file; .ci/clients.sh generates it there with
`openapi-python-client generate --meta none --output-path clients/python/generated/latchkey_client`.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, os.environ.get("LATCHKEY_PY_CLIENT_DIR", str(Path(__file__).resolve().parent / "generated")))

from latchkey_client import AuthenticatedClient, Client  # noqa: E402
from latchkey_client.api.account import get_me  # noqa: E402
from latchkey_client.api.auth import logout, refresh, signup  # noqa: E402
from latchkey_client.api.docs import get_open_api  # noqa: E402
from latchkey_client.api.sessions import list_sessions  # noqa: E402
from latchkey_client.models import (  # noqa: E402
    Problem,
    RefreshRequest,
    RefreshTokenTransport,
    Session,
    SignupRequest,
    TokenResponse,
    User,
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


def main() -> int:
    base_url = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LATCHKEY_URL", "")).rstrip("/")
    if not base_url:
        print("usage: smoke.py BASE_URL (or set LATCHKEY_URL)", file=sys.stderr)
        return 2
    print(f"python client smoke against {base_url}")
    started = time.monotonic()

    timeout = httpx.Timeout(10.0)
    anon = Client(base_url=base_url, timeout=timeout, raise_on_unexpected_status=True)
    tag = uuid.uuid4().hex[:12]
    email = f"py-smoke-{tag}@example.com"
    username = f"py_{tag}"
    password = f"py smoke {uuid.uuid4().hex}"

    # --- signup ---------------------------------------------------------------------
    resp = signup.sync_detailed(
        client=anon, body=SignupRequest(email=email.upper(), password=password, username=username)
    )
    if not check(resp.status_code == 201, "signup answers 201", body_of(resp)):
        return 1
    tokens = resp.parsed
    if not check(isinstance(tokens, TokenResponse), "signup body parses as TokenResponse", tokens):
        return 1
    assert isinstance(tokens, TokenResponse)
    check(tokens.token_type == "Bearer", "signup token_type is Bearer", tokens.token_type)
    check(tokens.expires_in > 0, "signup expires_in is positive", tokens.expires_in)
    check(tokens.access_token.count(".") == 2, "signup access_token is a JWT", tokens.access_token[:20])
    # `None` only with the cookie transport (below); the default is the body.
    refresh_token = tokens.refresh_token
    if not check(isinstance(refresh_token, str), "signup has the refresh_token in the body", refresh_token):
        return 1
    assert isinstance(refresh_token, str)
    check(len(refresh_token) >= 43, "signup refresh_token is long enough", len(refresh_token))
    check(isinstance(tokens.user, User), "signup user parses as User", tokens.user)
    check(tokens.user.email == email, "signup user.email is the email, lowercased", tokens.user.email)
    check(tokens.user.username == username, "signup user.username is the username", tokens.user.username)
    check(isinstance(tokens.user.id, uuid.UUID), "signup user.id is a UUID", tokens.user.id)
    check(is_aware(tokens.user.created_at), "signup user.created_at is a timestamp with offset", tokens.user.created_at)
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

    # --- refresh --------------------------------------------------------------------
    resp_rf = refresh.sync_detailed(client=anon, body=RefreshRequest(refresh_token=refresh_token))
    check(resp_rf.status_code == 200, "POST /refresh answers 200", body_of(resp_rf))
    rotated = resp_rf.parsed
    if not check(isinstance(rotated, TokenResponse), "POST /refresh body parses as TokenResponse", rotated):
        return 1
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

    elapsed = time.monotonic() - started
    print(f"python client smoke took {elapsed:.1f}s")
    print(f"python: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
