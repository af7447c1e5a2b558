"""The seed's HMAC over ``lots`` at the edges, and what a replayed signature may do."""

from __future__ import annotations

import hashlib
import hmac
import json

from sqlalchemy import select

from conveyor.clients.models import clients
from conveyor.compat.descriptions.signing import (
    _UNKNOWN_CLIENT_KEY,
    SIGNATURE_HEADER,
    signed_headers,
)
from conveyor.core.clock import ManualClock
from tests.integration.compat.descriptions_stack import (
    KEYS,
    TRANSLATE_MODEL,
    VISION_MODEL,
    StartStack,
)
from tests.integration.compat.seed_client import SeedClient, lot


def seed_signature(lots: object, key: str) -> str:
    normalized = json.dumps(lots, separators=(",", ":"), sort_keys=True)
    return hmac.new(key.encode(), normalized.encode(), hashlib.sha256).hexdigest()


async def test_non_ascii_key_order_and_whitespace_do_not_matter(start_stack: StartStack) -> None:
    async with start_stack() as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        image = stack.images.url("img/skoda.jpg")
        # The client signs with ensure_ascii (\u0160koda) whatever the body's own encoding.
        info = "Škoda Octavia 2020, повреждён бампер, 傷"
        result = await client.sync_generate("lot-ß", [image], info, ["en"])
        assert "Škoda Octavia 2020, повреждён бампер, 傷" in result["lots"][0]["descriptions"][0][
            "damages"
        ].replace("&amp;", "&")
        assert result["lots"][0]["lot_id"] == "lot-ß"

        # Keys in another order, pretty-printed, raw UTF-8: the server re-serialises the
        # parsed lots the seed's way, so the same signature holds.
        lots = [{"images": [{"url": image}], "additional_info": info + "!", "lot_id": "x-1"}]
        body = {
            "lots": lots,
            "languages": ["en"],
            "version": "1.0.0",
            "signature": seed_signature(lots, KEYS["acme"]).upper(),
        }
        response = await stack.http.post(
            "/api/v1/generate-descriptions",
            content=json.dumps(body, indent=4, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["lots"][0]["lot_id"] == "x-1"


async def test_wrong_or_prefixed_signatures_are_refused_with_a_hint(
    start_stack: StartStack,
) -> None:
    async with start_stack() as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        lots = [lot("car-1", stack.images.url("img/a.jpg"), info="2020 Toyota Camry")]
        good = seed_signature(lots, KEYS["acme"])

        async def send(signature: object, body_lots: object = lots) -> dict:
            payload = {"version": "1.0.0", "languages": ["en"], "lots": body_lots}
            if signature is not None:
                payload["signature"] = signature
            response = await client.post_payload(payload)
            assert response.status_code == 403, response.text
            assert response.json()["error"] == "INVALID_SIGNATURE"
            return response.json()

        prefixed = await send(f"sha256={good}")
        assert 'without the "sha256=" prefix' in prefixed["message"]
        assert "missing" in (await send(None))["message"]
        assert "64 hexadecimal" in (await send("abc123"))["message"]
        wrong_key = await send(seed_signature(lots, "not-the-key"))
        assert "does not match" in wrong_key["message"]
        assert "sort_keys=True" in wrong_key["message"]
        # A signature for other lots: the additional_info was changed after signing.
        tampered = [dict(lots[0], additional_info="2024 Toyota Camry, no damage")]
        await send(good, tampered)
        # ensure_ascii=False signs other bytes than the seed's clients do.
        unicode_lots = [lot("ü", stack.images.url("img/a.jpg"))]
        raw = json.dumps(unicode_lots, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        await send(
            hmac.new(KEYS["acme"].encode(), raw.encode(), hashlib.sha256).hexdigest(), unicode_lots
        )
        assert stack.counters() == {}


def last_digit_changed(signature: str) -> str:
    return signature[:-1] + ("0" if signature[-1] != "0" else "1")


async def test_every_digit_of_a_signature_counts(start_stack: StartStack) -> None:
    async with start_stack() as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        image = stack.images.url("img/a.jpg")
        lots = [lot("car-1", image), lot("car-2", image)]
        body = {"version": "1.0.0", "languages": ["en"], "lots": lots}
        almost = last_digit_changed(seed_signature(lots, KEYS["acme"]))
        refused = await client.post_payload(dict(body, signature=almost))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "INVALID_SIGNATURE"
        assert "does not match" in refused.json()["message"]
        assert stack.counters() == {}
        job_id = await client.create_batch_job(lots)  # the exact signature is accepted

        path = "/api/v1/batch-jobs"
        cancel_path = f"{path}/{job_id}/cancel"
        for method, target in (("GET", path), ("POST", cancel_path)):
            headers = signed_headers(method, target, "", client="acme", shared_key=KEYS["acme"])
            headers[SIGNATURE_HEADER] = last_digit_changed(headers[SIGNATURE_HEADER])
            answer = await stack.http.request(method, target, headers=headers)
            assert answer.status_code == 403, answer.text
            assert answer.json()["message"] == "signature does not match"
        assert (await client.get_job_status(job_id))["status"] != "cancelled"


async def test_an_unknown_client_signing_with_the_throwaway_key_is_refused(
    start_stack: StartStack,
) -> None:
    # An unknown X-Client is checked against an internal throwaway key so that it costs as
    # much as a known one; a request signed with that key must still be refused.
    async with start_stack() as stack:
        acme = SeedClient(stack.base_url, KEYS["acme"])
        image = stack.images.url("img/a.jpg")
        job_id = await acme.create_batch_job([lot("a1", image), lot("a2", image)])
        path = "/api/v1/batch-jobs"
        for method, target in (("GET", path), ("POST", f"{path}/{job_id}/cancel")):
            headers = signed_headers(
                method, target, "", client="nobody", shared_key=_UNKNOWN_CLIENT_KEY
            )
            answer = await stack.http.request(method, target, headers=headers)
            assert answer.status_code == 403, answer.text
            assert answer.json() == {
                "error": "INVALID_SIGNATURE",
                "message": "signature does not match",
                "code": 403,
            }
        async with stack.runtime.db.read() as conn:
            names = set((await conn.execute(select(clients.c.name))).scalars())
        assert "nobody" not in names


async def test_each_client_has_its_own_key_and_its_own_jobs(start_stack: StartStack) -> None:
    async with start_stack() as stack:
        image = stack.images.url("img/a.jpg")
        acme = SeedClient(stack.base_url, KEYS["acme"])
        globex = SeedClient(stack.base_url, KEYS["globex"])
        acme_job = await acme.create_batch_job([lot("a1", image), lot("a2", image)])
        globex_job = await globex.create_batch_job([lot("g1", image), lot("g2", image)])

        async def listed(who: str) -> list[str]:
            path = "/api/v1/batch-jobs"
            headers = signed_headers("GET", path, "", client=who, shared_key=KEYS[who])
            response = await stack.http.get(path, headers=headers)
            return [job["job_id"] for job in response.json()["jobs"]]

        assert await listed("acme") == [acme_job]
        assert await listed("globex") == [globex_job]
        # Each signing name is a Conveyor client: the native API's rows say whose job it is.
        jobs = stack.runtime.jobs
        async with stack.runtime.db.read() as conn:
            acme_row = await jobs.get(conn, None, acme_job)
            globex_row = await jobs.get(conn, None, globex_job)
        assert acme_row.client_id != globex_row.client_id
        assert acme_row.source == globex_row.source == "descriptions"


async def test_a_replayed_signature_is_answered_from_the_first_job(
    start_stack: StartStack,
) -> None:
    clock = ManualClock()
    async with start_stack(clock=clock) as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        lots = [lot("car-7", stack.images.url("img/a.jpg"), info="2019 Audi A4")]
        signature = seed_signature(lots, KEYS["acme"])

        async def send(languages: list[str]) -> tuple[int, dict]:
            response = await client.post_payload(
                {"signature": signature, "version": "1.0.0", "languages": languages, "lots": lots}
            )
            return response.status_code, response.json()

        status, first = await send(["en", "ru"])
        assert status == 200
        assert stack.counters() == {VISION_MODEL: 1, TRANSLATE_MODEL: 1}

        # The same request again: the same answer, nothing new is paid for.
        assert await send(["en", "ru"]) == (200, first)
        # Fewer languages (the seed's advice after a timeout): served from the same job.
        status, english = await send(["en"])
        assert status == 200
        assert english["lots"][0]["descriptions"] == first["lots"][0]["descriptions"][:1]
        assert stack.counters() == {VISION_MODEL: 1, TRANSLATE_MODEL: 1}

        # Other languages for the same signed lots: the signature does not cover them.
        status, refused = await send(["en", "ru", "de", "fr"])
        assert status == 409
        assert refused["error"] == "REPLAYED_SIGNATURE"
        assert "does not cover 'languages'" in refused["message"]
        assert "de, fr" in refused["message"]
        assert stack.counters() == {VISION_MODEL: 1, TRANSLATE_MODEL: 1}

        # After the replay window the lots may be described again, in any languages.
        clock.advance(601)
        status, later = await send(["en", "de"])
        assert status == 200
        assert "[de] " in later["lots"][0]["descriptions"][1]["damages"]
        assert stack.counters() == {VISION_MODEL: 2, TRANSLATE_MODEL: 2}


async def test_a_replay_of_a_failed_request_runs_again(start_stack: StartStack) -> None:
    async with start_stack() as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        lots = [lot("gone", stack.images.url("missing.jpg"))]
        payload = {
            "signature": seed_signature(lots, KEYS["acme"]),
            "version": "1.0.0",
            "languages": ["en"],
            "lots": lots,
        }
        first = await client.post_payload(payload)
        assert first.status_code == 422
        assert first.json()["error"] == "LOT_FAILED"
        again = await client.post_payload(payload)
        assert again.status_code == 422
        # A failed job is not an answer to give again: the image may be back by now.
        assert again.json()["job_id"] != first.json()["job_id"]
        assert stack.images.hits["/missing.jpg"] == 2


async def test_without_a_replay_window_every_request_is_a_new_job(
    start_stack: StartStack,
) -> None:
    async with start_stack(descriptions_replay_window=0) as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        image = stack.images.url("img/a.jpg")
        await client.sync_generate("car-1", [image], "", ["en"])
        await client.sync_generate("car-1", [image], "", ["en", "de"])
        assert stack.counters() == {VISION_MODEL: 2, TRANSLATE_MODEL: 1}
