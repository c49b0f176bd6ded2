"""The OpenAPI and AsyncAPI documents in docs/ are exactly what the code generates."""

from __future__ import annotations

from scripts.docs import rendered


def test_committed_documents_match_the_code():
    stale = [
        str(path)
        for path, text in rendered().items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"run `make docs` and commit: {stale}"


def test_every_event_type_has_a_channel_and_a_schema():
    from shared import asyncapi

    document = asyncapi.build()
    catalogue = asyncapi.load_catalogue()
    assert catalogue, "no event type registered"
    for entry in catalogue.values():
        channel = document["channels"][asyncapi.channel_id(entry)]
        assert channel["address"] == f"{entry.source}.{entry.name}.{{unitpath}}"
        assert document["operations"][f"send_{asyncapi.channel_id(entry)}"]["action"] == "send"
        schema = asyncapi.envelope_schema(entry)
        assert schema["properties"]["data"]["properties"], entry.type
