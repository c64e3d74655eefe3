"""Bearer tokens at the PanDA server, in-process over a real MariaDB: panda-client's oidc
mode (Authorization: Bearer <id token>, Origin: <vo>[.role]) submits, reads and kills
as the token's user; the production role comes from the token's group; what is not
believed (expired, another issuer, another audience, a forged or unsigned token, a
group missing, no Origin) is a 403, an unreachable issuer a 503."""

from __future__ import annotations

import json
import time

import pytest
from test_server_db import PILOT, call, positional, post_json

import testtokens
from pandafacility import jobs, tokens
from pandafacility.db import DbSettings
from pandafacility.identity import canonical_dns
from pandafacility.server import Server, ServerConfig

ISSUER = testtokens.Issuer("https://iam.test.example")
VO = {"vo": "atlas", "oidc_config_url": ISSUER.discovery_url, "client_id": "panda-client",
      "secondary_ids": ["panda-robot"], "audience": "https://pandaserver.test"}  # fmt: skip
USER = {"aud": "panda-client", "sub": "a1b2", "name": "jane doe", "preferred_username": "jdoe",
        "groups": ["atlas"]}  # fmt: skip
NAME = "Jane Doe/CN=nickname:jdoe"


@pytest.fixture(scope="module")
def server(testdb_settings):
    config = ServerConfig(database=DbSettings.from_dict(testdb_settings),
                          production_dns=canonical_dns([PILOT]), queues={"SITE_A": {}},
                          token_vos=(tokens.TokenVo.from_dict(VO),))  # fmt: skip
    server = Server(config)
    documents = ISSUER.documents()
    server.tokens.fetch = lambda url: documents[url]
    return server


def bearer(token: str, origin: str = "atlas") -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_ORIGIN": origin}


def test_a_token_submits_reads_and_kills_as_its_user(server, clean_db):
    token = ISSUER.mint(**USER)
    job = {"jobName": "t", "computingSite": "SITE_A", "transformation": "run.sh"}
    status, answer = post_json(
        server,
        "/api/v1/job/submit",
        {"jobs": json.dumps([positional(**job)])},
        headers=bearer(token),
    )
    assert status == 200 and answer["success"], answer
    pid = answer["data"][0][0]
    clean_db.commit()
    with clean_db.cursor() as cur:
        cur.execute("SELECT owner_dn, prod_source_label FROM jobs WHERE panda_id = %s", (pid,))
        assert cur.fetchone() == {"owner_dn": NAME, "prod_source_label": "user"}
    status, answer = post_json(
        server, "/api/v1/job/kill", {"job_ids": [pid]}, headers=bearer(token)
    )
    assert answer["data"] == [True]
    # Someone else's token may not kill it; the user is no pilot.
    other = ISSUER.mint(**{**USER, "name": "someone else"})
    assert post_json(server, "/api/v1/job/kill", {"job_ids": [pid]}, headers=bearer(other))[1][
        "data"
    ] == [False]
    acquire = post_json(
        server, "/api/v1/pilot/acquire_jobs", {"site_name": "SITE_A"}, headers=bearer(token)
    )
    assert acquire[0] == 403


def test_the_production_role_comes_from_the_group(server, clean_db):
    robot = ISSUER.mint(**{**USER, "aud": "panda-robot", "groups": ["/atlas/production", "atlas"]})
    (pid,) = jobs.submit(clean_db, [jobs.NewJob("p", "SITE_A")], "/CN=someone")
    status, answer = post_json(server, "/api/v1/pilot/acquire_jobs", {"site_name": "SITE_A"},
                               headers=bearer(robot, "atlas.production"))  # fmt: skip
    assert status == 200 and answer["data"]["jobs"][0]["PandaID"] == pid
    # The same token without the role in its Origin is a user; a role it lacks is refused.
    assert post_json(server, "/api/v1/pilot/acquire_jobs", {"site_name": "SITE_A"},
                     headers=bearer(robot))[0] == 403  # fmt: skip
    user = ISSUER.mint(**USER)
    status, answer = post_json(server, "/api/v1/pilot/acquire_jobs", {"site_name": "SITE_A"},
                               headers=bearer(user, "atlas:production"))  # fmt: skip
    assert status == 403 and "atlas/production" in answer["message"]


def deep(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


def forged() -> str:
    other = testtokens.Issuer(ISSUER.url)  # same name, another key, same kid
    return other.mint(**USER)


def unsigned() -> str:
    _, body, _ = ISSUER.mint(**USER).split(".")
    none = testtokens.b64(json.dumps({"alg": "none", "kid": ISSUER.kid}).encode())
    return f"{none}.{body}."


@pytest.mark.parametrize("token,origin,why", [
    (lambda: ISSUER.mint(lifetime=-600, **USER), "atlas", "expired"),
    (lambda: ISSUER.mint(**{**USER, "iss": "https://other.example"}), "atlas", "issuer"),
    (lambda: ISSUER.mint(**{**USER, "aud": "someone-else"}), "atlas", "not for"),
    (lambda: ISSUER.mint(**{**USER, "groups": ["cms"]}), "atlas", "member"),
    (lambda: ISSUER.mint(**USER), "", "Origin"),
    (lambda: ISSUER.mint(**USER), "cms", "unknown VO"),
    (forged, "atlas", "signature"),
    (unsigned, "atlas", "RS256"),
    (lambda: "not.a.token", "atlas", "cannot be read"),
    (lambda: ISSUER.mint(**{**USER, "name": "/dc=test/cn=pilot"}), "atlas", "certificate DN"),
    (lambda: ISSUER.mint(**{**USER, "x": deep(200)}), "atlas", "cannot be read"),
], ids=["expired", "issuer", "audience", "group", "no-origin", "other-vo", "forged",
        "unsigned", "garbage", "dn-like", "deep"])  # fmt: skip
def test_tokens_not_believed_are_refused(server, clean_db, token, origin, why):
    body = {"jobs": json.dumps([positional(jobName="t", computingSite="SITE_A")])}
    status, answer = post_json(server, "/api/v1/job/submit", body, headers=bearer(token(), origin))
    assert status == 403 and why in answer["message"], answer
    clean_db.commit()
    with clean_db.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM jobs")
        assert cur.fetchone()["n"] == 0


def test_an_unreachable_issuer_is_a_503_and_cached_keys_outlive_it(testdb_settings, clean_db):
    config = ServerConfig(database=DbSettings.from_dict(testdb_settings), queues={"SITE_A": {}},
                          token_vos=(tokens.TokenVo.from_dict(VO),))  # fmt: skip
    server = Server(config)

    def away(url: str) -> dict:
        raise OSError("connection refused")

    server.tokens.fetch = away
    now = [time.time()]
    server.tokens.clock = lambda: now[0]
    query = {**bearer(ISSUER.mint(**USER)), "QUERY_STRING": "job_ids=1"}
    status, headers, _ = call(server, "GET", "/api/v1/job/get_status", headers=query)
    assert status == 503 and headers["Retry-After"]
    documents = ISSUER.documents()
    server.tokens.fetch = lambda url: documents[url]
    # Within seconds of a failure the issuer is not asked again (a flood waits on nothing).
    assert call(server, "GET", "/api/v1/job/get_status", headers=query)[0] == 503
    now[0] += tokens.RETRY_SECONDS
    assert call(server, "GET", "/api/v1/job/get_status", headers=query)[0] == 200
    server.tokens.fetch = away  # keys cached: the issuer's outage changes nothing
    assert call(server, "GET", "/api/v1/job/get_status", headers=query)[0] == 200


def test_the_vo_auth_config_is_published(server):
    status, _, out = call(server, "GET", "/auth/atlas_auth_config.json")
    assert status == 200 and json.loads(out) == {
        "vo": "atlas", "oidc_config_url": ISSUER.discovery_url, "client_id": "panda-client",
        "client_secret": None, "audience": "https://pandaserver.test"}  # fmt: skip
    assert call(server, "GET", "/auth/cms_auth_config.json")[0] == 404


def test_a_certificate_wins_over_a_token(server, clean_db):
    body = {"jobs": json.dumps([positional(jobName="c", computingSite="SITE_A")])}
    status, answer = post_json(server, "/api/v1/job/submit", body, dn=PILOT,
                               headers=bearer("garbage"))  # fmt: skip
    assert status == 200 and answer["success"]
