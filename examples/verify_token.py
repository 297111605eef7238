"""Verify a Latchkey access token offline with PyJWT (pip install 'pyjwt[crypto]').

    python3 examples/verify_token.py http://127.0.0.1:8080 "$ACCESS_TOKEN"
"""

import sys

import jwt


def verify(base_url: str, token: str) -> dict:
    if jwt.get_unverified_header(token).get("typ") != "at+jwt":
        raise jwt.InvalidTokenError("not a Latchkey access token")
    jwks = jwt.PyJWKClient(f"{base_url}/.well-known/jwks.json")
    key = jwks.get_signing_key_from_jwt(token).key
    return jwt.decode(
        token,
        key,
        algorithms=["EdDSA"],
        audience="latchkey",
        issuer="latchkey",
        options={"require": ["exp", "nbf", "iss", "aud", "sub"]},
    )


if __name__ == "__main__":
    base_url, token = sys.argv[1], sys.argv[2]
    try:
        claims = verify(base_url, token)
    except jwt.InvalidTokenError as error:
        print(f"rejected: {error}")
        sys.exit(1)
    print(f"valid: user {claims['sub']} session {claims['sid']} until {claims['exp']}")
