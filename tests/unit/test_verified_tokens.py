"""The verified-token cache (shared.auth.VerifiedTokens): a token sent again is not verified again, but
never outlives its ``exp``, its key set (tests/unit/test_security_auth.py: a retired key) or its bound."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from shared.auth import DEV_SECRET, Authenticator, AuthSettings, Principal, VerifiedTokens, mint
from shared.problems import Unauthorized

DEVELOPMENT = AuthSettings(development=True, secret=DEV_SECRET, oidc=None)
DESK = Principal(sub="desk", roles=frozenset({"desk_officer"}), units=("26740",))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Every token jwt.decode is asked to verify."""
    seen: list[str] = []
    real = jwt.decode

    def counting(token, *args, **kwargs):
        seen.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


def test_a_token_sent_again_is_not_verified_again(decodes):
    auth = Authenticator(DEVELOPMENT)
    token = mint(DEV_SECRET, sub="desk", roles=["desk_officer"], units=["26740"])
    first = auth.verify(f"Bearer {token}")
    again = auth.verify(f"Bearer {token}")
    assert first == again == DESK
    assert decodes == [token]


def test_a_cached_token_is_refused_once_its_exp_has_passed(decodes):
    token = mint(DEV_SECRET, sub="desk", roles=["desk_officer"], units=["26740"], ttl=timedelta(minutes=5))
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    decodes.clear()
    wall = Clock(exp - 60)
    auth = Authenticator(DEVELOPMENT, VerifiedTokens(wall=wall))
    auth.verify(f"Bearer {token}")
    auth.verify(f"Bearer {token}")
    assert decodes == [token]
    wall.now = exp  # the cache says nothing more: the token is verified again (PyJWT, the real clock)
    auth.verify(f"Bearer {token}")
    assert decodes == [token, token]


def test_an_entry_ends_at_exp_and_at_its_key_sets_expiry():
    wall, monotonic = Clock(1000.0), Clock(50.0)
    tokens = VerifiedTokens(wall=wall, monotonic=monotonic)
    tokens.put("a", DESK, exp=1010.0)
    tokens.put("b", DESK, exp=2000.0, key_set_expires=60.0)
    assert tokens.get("a") == tokens.get("b") == DESK
    wall.now = 1010.0
    assert tokens.get("a") is None and tokens.get("b") == DESK
    monotonic.now = 60.0
    assert tokens.get("b") is None


def test_nothing_already_expired_is_kept():
    tokens = VerifiedTokens(wall=Clock(1000.0), monotonic=Clock(50.0))
    tokens.put("expired", DESK, exp=1000.0)
    tokens.put("stale key set", DESK, exp=2000.0, key_set_expires=50.0)
    assert tokens.get("expired") is None and tokens.get("stale key set") is None


def test_a_full_cache_drops_its_oldest_entry():
    tokens = VerifiedTokens(capacity=2, wall=Clock(0.0))
    for token in ("first", "second", "third"):
        tokens.put(token, DESK, exp=100.0)
    assert tokens.get("first") is None
    assert tokens.get("second") == tokens.get("third") == DESK


def test_a_refused_token_is_not_kept_and_is_refused_again(decodes):
    auth = Authenticator(DEVELOPMENT)
    forged = mint("another-secret-of-at-least-32-bytes!", sub="x", roles=["admin"], units=[])
    for _ in range(2):
        with pytest.raises(Unauthorized):
            auth.verify(f"Bearer {forged}")
    assert decodes == [forged, forged]
