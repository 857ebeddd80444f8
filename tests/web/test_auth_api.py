"""POST /api/login and /api/refresh, tokens, API keys, the login brake, JSON errors."""

from __future__ import annotations

import jwt
import pytest

from switch.web.auth import Accounts, Principal, Throttle, Tokens
from switch.web.errors import ApiError

from .support import API_KEY, harness, make_config


async def test_agent_logs_in_with_the_sip_password_and_gets_tokens(tmp_path):
    async with harness(tmp_path) as h:
        resp = await h.client.post(
            "/api/login", json={"username": "1002", "password": "bob-pw", "tenant": "acme"}
        )
        assert resp.status == 200
        body = await resp.json()
        assert (body["role"], body["tenant"], body["user"], body["agent"]) == (
            "agent", "acme", "1002", "1002",
        )  # fmt: skip
        assert body["expires_in"] == 900
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 900 and claims["typ"] == "access"
        me = await h.client.get("/api/agents", headers={"Authorization": f"Bearer {body['token']}"})
        assert [a["id"] for a in (await me.json())["agents"]] == ["1002"]


async def test_users_log_in_with_their_role(tmp_path):
    async with harness(tmp_path) as h:
        for user, password, role in (("sup", "sup-pw", "supervisor"), ("boss", "boss-pw", "admin")):
            resp = await h.client.post("/api/login", json={"username": user, "password": password,
                                                           "tenant": "acme"})  # fmt: skip
            body = await resp.json()
            assert (resp.status, body["role"], body["agent"]) == (200, role, None)


async def test_wrong_password_unknown_user_and_wrong_tenant_are_the_same_401(tmp_path):
    async with harness(tmp_path) as h:
        for body in (
            {"username": "1002", "password": "nope", "tenant": "acme"},
            {"username": "9999", "password": "bob-pw", "tenant": "acme"},
            {"username": "1002", "password": "bob-pw", "tenant": "other"},
            {"username": "1002", "password": "bob-pw", "tenant": "nosuch"},
        ):
            resp = await h.client.post("/api/login", json=body)
            assert resp.status == 401
            assert await resp.json() == {
                "error": "invalid_credentials",
                "message": "wrong username, password or tenant",
            }


async def test_a_login_in_two_tenants_needs_the_tenant_only_when_ambiguous(tmp_path):
    async with harness(tmp_path) as h:
        # 1001 exists in acme and other with different passwords: no ambiguity.
        resp = await h.client.post("/api/login", json={"username": "1001", "password": "olga-pw"})
        assert (await resp.json())["tenant"] == "other"
    config = make_config(
        tmp_path,
        (tmp_path / "api.toml")
        .read_text()
        .replace('password = "olga-pw"', 'password = "alice-pw"'),
    )
    with pytest.raises(ApiError) as err:
        Accounts(config).login("1001", "alice-pw", None)
    assert err.value.status == 400 and err.value.field == "tenant"
    assert Accounts(config).login("1001", "alice-pw", "other") == Principal(
        "1001", "other", "agent", "1001"
    )


async def test_refresh_gives_a_new_pair_and_refuses_an_access_token(tmp_path):
    async with harness(tmp_path) as h:
        resp = await h.client.post("/api/login", json={"username": "sup", "password": "sup-pw"})
        tokens = await resp.json()
        again = await h.client.post("/api/refresh", json={"refresh": tokens["refresh"]})
        assert again.status == 200
        fresh = await again.json()
        assert fresh["token"] != tokens["token"] and fresh["role"] == "supervisor"
        wrong = await h.client.post("/api/refresh", json={"refresh": tokens["token"]})
        assert wrong.status == 401
        assert "send the refresh token" in (await wrong.json())["message"]
        # A refresh token is not an access token either.
        resp = await h.client.get(
            "/api/agents", headers={"Authorization": f"Bearer {tokens['refresh']}"}
        )
        assert resp.status == 401


def test_tokens_expire_and_a_foreign_signature_is_refused():
    now = [1000.0]
    tokens = Tokens("k" * 32, clock=lambda: now[0])
    pair = tokens.issue(Principal("sup", "acme", "supervisor"))
    assert tokens.verify(pair["token"]).user == "sup"
    now[0] += 901
    with pytest.raises(ApiError, match="expired: refresh it"):
        tokens.verify(pair["token"])
    assert tokens.verify(pair["refresh"], "refresh").tenant == "acme"
    other = Tokens("x" * 32, clock=lambda: now[0])
    with pytest.raises(ApiError, match="not a valid access token"):
        other.verify(tokens.issue(Principal("sup", "acme", "supervisor"))["token"])
    forged = jwt.encode({"sub": "x", "tenant": "acme", "role": "admin", "typ": "access",
                         "exp": 9e9}, "g" * 32, algorithm="HS256")  # fmt: skip
    with pytest.raises(ApiError):
        tokens.verify(forged)


def test_without_a_configured_secret_each_start_signs_with_its_own():
    a, b = Tokens(None), Tokens(None)
    token = a.issue(Principal("sup", "acme", "supervisor"))["token"]
    assert a.verify(token).user == "sup"
    with pytest.raises(ApiError):
        b.verify(token)


async def test_api_key_acts_with_its_role_in_its_tenant(tmp_path):
    async with harness(tmp_path) as h:
        resp = await h.client.get("/api/agents", headers={"X-API-Key": API_KEY})
        assert resp.status == 200
        assert [a["id"] for a in (await resp.json())["agents"]] == ["1001", "1002", "1003"]
        bad = await h.client.get("/api/agents", headers={"X-API-Key": API_KEY + "x"})
        assert (bad.status, (await bad.json())["error"]) == (401, "invalid_api_key")


async def test_no_credentials_is_401_with_what_to_send(tmp_path):
    async with harness(tmp_path) as h:
        for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer junk"}):
            resp = await h.client.get("/api/agents", headers=headers)
            assert resp.status == 401
            body = await resp.json()
            assert body["error"] in ("unauthorized", "invalid_token") and body["message"]


async def test_failed_logins_are_limited_per_address(tmp_path):
    now = [0.0]
    async with harness(tmp_path, throttle=Throttle(3, 60, clock=lambda: now[0])) as h:
        bad = {"username": "sup", "password": "wrong"}
        for _ in range(3):
            assert (await h.client.post("/api/login", json=bad)).status == 401
        resp = await h.client.post("/api/login", json={"username": "sup", "password": "sup-pw"})
        assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
        assert (await resp.json())["error"] == "too_many_attempts"
        now[0] = 61.0
        resp = await h.client.post("/api/login", json={"username": "sup", "password": "sup-pw"})
        assert resp.status == 200


async def test_bad_bodies_are_json_errors_never_500(tmp_path):
    async with harness(tmp_path) as h:
        cases = [
            (b"{not json", "application/json", 400, "malformed_json"),
            (b"[1, 2]", "application/json", 400, "malformed_json"),
            (b"\xff\xfe", "application/json", 400, "malformed_json"),
            (b"", "application/json", 400, "body_required"),
            (b"username=sup", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
            (b'{"username": 5, "password": "x"}', "application/json", 400, "invalid_field"),
            (b'{"username": "sup"}', "application/json", 400, "invalid_field"),
            (b'{"username": "sup", "password": "x", "extra": 1}', "application/json", 400,
             "invalid_field"),
        ]  # fmt: skip
        for data, ctype, status, code in cases:
            resp = await h.client.post("/api/login", data=data, headers={"Content-Type": ctype})
            body = await resp.json()
            assert (resp.status, body["error"]) == (status, code), (data, body)
            assert body["message"]
        resp = await h.client.post("/api/login", json={"username": "sup"})
        assert (await resp.json())["field"] == "password"


async def test_unknown_paths_and_methods_are_json_404_and_405(tmp_path):
    async with harness(tmp_path) as h:
        resp = await h.client.get("/api/nothing")
        assert (resp.status, (await resp.json())["error"]) == (404, "not_found")
        resp = await h.client.delete("/api/login")
        body = await resp.json()
        assert (resp.status, body["error"]) == (405, "method_not_allowed")
        assert "POST" in resp.headers["Allow"] and "POST" in body["message"]


async def test_a_valid_token_for_a_tenant_or_agent_not_here_is_refused(tmp_path):
    async with harness(tmp_path) as h:
        for who in (Principal("x", "ghost", "supervisor"), Principal("7", "acme", "agent", "7")):
            token = h.api.tokens.issue(who)["token"]
            resp = await h.client.get("/api/agents", headers={"Authorization": f"Bearer {token}"})
            assert (resp.status, (await resp.json())["error"]) == (401, "invalid_token")


async def test_an_operator_acts_on_the_tenant_it_names_and_a_supervisor_cannot(tmp_path):
    async with harness(tmp_path) as h:
        op = await h.auth("op", "op-pw", "acme")
        resp = await h.client.get("/api/agents", headers={**op, "X-Tenant": "other"})
        assert [a["tenant"] for a in (await resp.json())["agents"]] == ["other", "other"]
        resp = await h.client.get("/api/agents", headers=op)
        assert {a["tenant"] for a in (await resp.json())["agents"]} == {"acme"}
        resp = await h.client.get("/api/agents?tenant=ghost", headers=op)
        assert resp.status == 404 and "tenants: acme, other" in (await resp.json())["message"]
        resp = await h.client.put(
            "/api/agents/2001/state",
            json={"state": "logged-out"},
            headers={**op, "X-Tenant": "other"},
        )
        assert resp.status == 200
        assert h.service.snapshot("other")["agents"]["2001"]["status"] == "logged-out"
        sup = await h.auth("sup", "sup-pw", "acme")
        resp = await h.client.get("/api/agents", headers={**sup, "X-Tenant": "other"})
        assert {a["tenant"] for a in (await resp.json())["agents"]} == {"acme"}
