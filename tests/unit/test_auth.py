"""Token verification and the authorisation table (pure logic, no servers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mesh.auth import AccessPolicy, Principal, Rule, TokenVerifier, ensure_keys, mint_token
from mesh.errors import PermissionDenied, Unauthenticated

METHOD = "/switchboard.order.v1.OrderService/PlaceOrder"


@pytest.fixture
def verifier(keys: Path) -> TokenVerifier:
    return TokenVerifier.from_file(keys / "jwt.pub", "switchboard", "switchboard")


def test_valid_token_yields_user_and_roles(verifier: TokenVerifier, token: Callable[..., str]) -> None:
    principal = verifier.verify(f"Bearer {token('alice', 'customer')}")
    assert principal == Principal("alice", frozenset({"customer"}))


def test_unknown_roles_are_dropped(verifier: TokenVerifier, token: Callable[..., str]) -> None:
    assert verifier.verify(f"Bearer {token('bob', 'root', 'admin')}").roles == {"admin"}


def test_expired_token_is_unauthenticated(verifier: TokenVerifier, token: Callable[..., str]) -> None:
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(f"Bearer {token('alice', 'customer', ttl_s=-60)}")


def test_token_signed_by_another_key_is_unauthenticated(verifier: TokenVerifier, tmp_path: Path) -> None:
    ensure_keys(tmp_path / "other.key", tmp_path / "other.pub")
    forged = mint_token((tmp_path / "other.key").read_bytes(), "mallory", ["admin"])
    with pytest.raises(Unauthenticated, match="invalid token"):
        verifier.verify(f"Bearer {forged}")


def test_missing_bearer_scheme_is_unauthenticated(verifier: TokenVerifier, token: Callable[..., str]) -> None:
    with pytest.raises(Unauthenticated):
        verifier.verify(token("alice", "customer"))


def test_policy_denies_a_role_not_in_the_rule() -> None:
    policy = AccessPolicy({METHOD: Rule(roles=frozenset({"customer"}))})
    with pytest.raises(PermissionDenied):
        policy.authorize(METHOD, Principal("ops", frozenset({"operator"})))


def test_policy_allows_a_role_in_the_rule() -> None:
    policy = AccessPolicy({METHOD: Rule(roles=frozenset({"customer"}))})
    policy.authorize(METHOD, Principal("alice", frozenset({"customer"})))


def test_policy_denies_methods_without_a_rule() -> None:
    with pytest.raises(PermissionDenied):
        AccessPolicy({}).authorize(METHOD, Principal("root", frozenset({"admin"})))


def test_health_and_reflection_are_open_without_a_rule() -> None:
    policy = AccessPolicy({})
    policy.authorize("/grpc.health.v1.Health/Check", Principal("", frozenset()))
    policy.authorize(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", Principal("", frozenset())
    )


def test_ownership_allows_owner_and_privileged_roles_only() -> None:
    owners = ["alice"]
    assert Principal("alice", frozenset({"customer"})).may_access(owners)
    assert Principal("root", frozenset({"admin"})).may_access(owners)
    assert not Principal("bob", frozenset({"customer"})).may_access(owners)


def test_tokens_of_either_key_verify_while_keys_rotate(
    keys: Path, token: Callable[..., str], tmp_path: Path
) -> None:
    ensure_keys(tmp_path / "next.key", tmp_path / "next.pub")
    both = (keys / "jwt.pub").read_bytes() + (tmp_path / "next.pub").read_bytes()
    verifier = TokenVerifier(both, "switchboard", "switchboard")
    signed_by_next = mint_token((tmp_path / "next.key").read_bytes(), "alice", ["customer"])
    assert verifier.verify(f"Bearer {signed_by_next}").user_id == "alice"
    assert verifier.verify(f"Bearer {token('bob', 'advisor')}").user_id == "bob"
