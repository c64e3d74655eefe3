"""The token verifier's reading of an issuer: one fetch at a time, the stale copy for
everyone else while it runs, and an issuer that failed is not asked again at once."""

from __future__ import annotations

import math
import threading
import time

import pytest

import testtokens
from pandafacility import tokens

URL = "https://iam.test/.well-known/openid-configuration"


def verifier(fetch, now):
    return tokens.Verifier({}, fetch=fetch, clock=lambda: now[0])


def test_a_slow_issuer_holds_one_thread_and_the_others_use_the_stale_copy():
    now, calls, release = [1000.0], [], threading.Event()

    def fetch(url):
        calls.append(url)
        if len(calls) > 1:
            release.wait(5)  # the refresh hangs
        return {"n": len(calls)}

    v = verifier(fetch, now)
    assert v._get(URL) == {"n": 1}
    now[0] += tokens.CACHE_SECONDS + 1  # stale
    slow = threading.Thread(target=v._get, args=(URL,))
    slow.start()
    time.sleep(0.1)
    started = time.monotonic()
    answers = [v._get(URL) for _ in range(20)]
    assert time.monotonic() - started < 1 and answers == [{"n": 1}] * 20
    release.set()
    slow.join()
    assert len(calls) == 2 and v._get(URL) == {"n": 2}


def test_an_issuer_that_failed_is_not_asked_again_at_once():
    now, calls = [1000.0], []

    def fetch(url):
        calls.append(url)
        raise OSError("refused")

    v = verifier(fetch, now)
    for _ in range(5):
        with pytest.raises(tokens.IssuerUnavailable):
            v._get(URL)
    assert len(calls) == 1
    now[0] += tokens.RETRY_SECONDS
    with pytest.raises(tokens.IssuerUnavailable):
        v._get(URL)
    assert len(calls) == 2


@pytest.mark.parametrize("exp", [math.nan, math.inf, "2099-01-01"])
def test_an_expiry_that_is_not_a_finite_number_never_passes(exp):
    issuer = testtokens.Issuer("https://iam.test")
    vo = tokens.TokenVo("atlas", issuer.discovery_url, "panda")
    documents = issuer.documents()
    v = tokens.Verifier({"atlas": vo}, fetch=lambda url: documents[url])
    good = {"aud": "panda", "sub": "a", "groups": ["atlas"]}
    assert v.identify(issuer.mint(**good), "atlas") == ("a", False)
    with pytest.raises(tokens.TokenError, match="expired"):
        v.identify(issuer.mint(**good, exp=exp), "atlas")


def test_a_token_user_may_not_look_like_a_certificate_dn():
    assert tokens.user_name({"sub": "a"}) == "a"
    with pytest.raises(tokens.TokenError):
        tokens.user_name({"sub": "/DC=x/CN=pilot"})
