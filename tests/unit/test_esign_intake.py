"""How the dossier follows the e-signature service's events (services/dossier/esign_intake.py), on the
in-memory unit of work. docs/domain.md §9 Signatures: the leader signs the result, then the clerk applies
the organisation's signature — so a seal is the stamp step only after the signature is recorded."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

import pytest

from services.dossier import esign_intake, service_layer
from services.dossier.actions import REGISTRY
from services.dossier.domain.model import Action
from shared.events import Event
from tests.unit.test_dossier_service_layer import (  # noqa: F401 - fixtures
    PROVINCE,
    act,
    office,
    person,
    receive,
    uow,
)

SIGNED, STAMPED = REGISTRY[Action.SIGN].event.name, REGISTRY[Action.STAMP].event.name


def decided(uow, office) -> str:  # noqa: F811
    code = receive(uow, office)
    for action, body in (
        (Action.START_PROCESSING, {}),
        (Action.APPRAISE, {}),
        (Action.DECIDE, {"decision": "approved"}),
    ):
        act(uow, office, code, action, body)
    return code


def esign_event(name: str, code: str, office) -> Event:  # noqa: F811
    at = office.clock()  # after every step so far
    data = {
        "request_id": "req-1",
        "signer_sub": "leader@79" if name == "signed" else "clerk@79",
        "signer_role": "leader" if name == "signed" else "clerk",
        "signer_name": "Lê Văn Cường",
        "occurred_at": at.isoformat(),
        "document_sha256": "0" * 64,
    }
    return Event(source="esign", name=name, subject=code, data=data, unit_path="79.26740", sequence=1)


def test_a_seal_before_its_signature_is_retried_and_then_stamps(uow, office):  # noqa: F811
    code = decided(uow, office)
    before = len(uow.published)
    sealed, signed = esign_event("sealed", code, office), esign_event("signed", code, office)

    with pytest.raises(esign_intake.SealedBeforeSigned):
        esign_intake.apply(sealed, uow, office)
    assert uow.state.dossiers[code].stamped_at is None and len(uow.published) == before

    assert esign_intake.apply(signed, uow, office) is None
    # The retried seal is not taken for a redelivery: the failed attempt claimed nothing.
    assert esign_intake.apply(sealed, uow, office) is None
    assert uow.published_names()[before:] == [SIGNED, STAMPED]
    assert esign_intake.apply(sealed, uow, office) is False  # a true redelivery now changes nothing
    assert uow.published_names()[before:] == [SIGNED, STAMPED]
    # Decision 766 (docs/domain.md §12): a seal through the e-signature service issues the result digitally
    assert uow.published[-1].data["digital"] is True


def test_a_stamp_on_paper_does_not_issue_the_result_digitally(uow, office):  # noqa: F811
    code = decided(uow, office)
    act(uow, office, code, Action.SIGN, {})
    act(uow, office, code, Action.STAMP, {})
    assert uow.published[-1].name == STAMPED and uow.published[-1].data["digital"] is False


def test_a_seal_the_status_no_longer_allows_is_acknowledged_not_retried(uow, office):  # noqa: F811
    """Signed and stamped on paper meanwhile: retrying the seal cannot make it apply."""
    code = decided(uow, office)
    act(uow, office, code, Action.SIGN)
    act(uow, office, code, Action.STAMP)
    before = len(uow.published)
    assert esign_intake.apply(esign_event("sealed", code, office), uow, office) is None
    assert len(uow.published) == before


def test_only_the_esign_service_reports_a_signature(uow, office, caplog):  # noqa: F811
    """The intake's actor check: a trusted source service, as a person's action checks role and unit."""
    code = decided(uow, office)
    before = len(uow.published)
    forged = dataclasses.replace(esign_event("signed", code, office), source="portal")
    with caplog.at_level(logging.INFO, logger=esign_intake.__name__):
        assert esign_intake.apply(forged, uow, office) is None
    assert uow.state.dossiers[code].signed_at is None and len(uow.published) == before
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_a_seal_gives_the_portal_its_result_documents_number_and_date(uow, office):  # noqa: F811
    """The e-signature service issues the document at the seal, with its register number: the portal's
    result document (DanhSachGiayToKetQua) shows that number and the seal's time."""
    code = decided(uow, office)
    assert esign_intake.apply(esign_event("signed", code, office), uow, office) is None
    sealed = esign_event("sealed", code, office)
    sealed = dataclasses.replace(sealed, data={**sealed.data, "document_number": "07/KQ-26740"})
    assert esign_intake.apply(sealed, uow, office) is None
    with uow.transaction() as tx:
        record = service_layer.portal_record(
            service_layer.Read(person("portal_sync", PROVINCE), code), tx, office
        )
    assert record["results"] == [
        {
            "decision": "approved",
            "number": "07/KQ-26740",
            "issued_at": datetime.fromisoformat(sealed.data["occurred_at"]),
        }
    ]
