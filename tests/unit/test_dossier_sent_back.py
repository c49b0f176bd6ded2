"""The dossier's side of a refused signature (issue 10): the leader refuses to sign the result through
the e-signature service, so the decision is withdrawn and the dossier goes back to the handling agency
for appraisal — it must be appraised and decided again before anyone signs.
"""

from __future__ import annotations

import pytest

from services.dossier.domain.model import Action, InvalidArgument, Status, TransitionNotAllowed
from tests.unit.test_dossier_lifecycle import at, drive, in_status


def decided():
    return drive(in_status(Status.PROCESSING), Action.APPRAISE, Action.DECIDE)


def test_a_refused_signature_sends_the_decided_dossier_back_for_appraisal():
    dossier = decided()
    handling_unit = dossier.handling_unit
    dossier.send_back_for_appraisal(reason="Cần xác minh thêm hồ sơ", now=at(days=1))
    assert dossier.status is Status.PROCESSING and dossier.handling_unit == handling_unit
    assert dossier.decision is None and dossier.decision_reason is None
    event = dossier.events[-1]
    assert event.name == "sent_back_for_appraisal" and event.data["reason"] == "Cần xác minh thêm hồ sơ"
    # Back at appraisal: nothing to sign, and no deciding before appraising again.
    with pytest.raises(TransitionNotAllowed, match="no decision"):
        dossier.sign(signer_role="leader", now=at(days=1))
    with pytest.raises(TransitionNotAllowed, match="appraised before"):
        dossier.decide(decision="approved", reason=None, now=at(days=1))
    drive(dossier, Action.APPRAISE, Action.DECIDE, Action.SIGN, Action.STAMP, Action.RESOLVE)
    assert dossier.status is Status.RESOLVED


def test_only_a_decided_unsigned_dossier_is_sent_back():
    undecided = drive(in_status(Status.PROCESSING), Action.APPRAISE)
    with pytest.raises(TransitionNotAllowed):
        undecided.send_back_for_appraisal(reason="x", now=at(days=1))
    signed = drive(decided(), Action.SIGN)
    with pytest.raises(TransitionNotAllowed):
        signed.send_back_for_appraisal(reason="x", now=at(days=1))
    with pytest.raises(InvalidArgument):
        decided().send_back_for_appraisal(reason="  ", now=at(days=1))
