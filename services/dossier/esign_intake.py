"""How a dossier follows the e-signature service's events (docs/domain.md §9 Signatures; issue 10).

* ``esign.signed``: the competent leader signed the result digitally — the dossier's sign step.
* ``esign.sealed``: the clerk applied the organisation's signature — the stamp step (đóng dấu).
* ``esign.refused``: the leader refused to sign, with a reason — the decision is withdrawn and the
  dossier goes back to the handling agency for appraisal (:meth:`Dossier.send_back_for_appraisal`).

This module only maps an event to the :class:`~services.dossier.service_layer.Change` it makes; the one
path of every change applies it (``service_layer.follow``, then ``apply``): once (the inbox), through
the same domain methods as the manual ``sign`` and ``stamp`` actions, which remain for results signed
on paper. The audit line names the signer (their account and name) and says ``via: esign`` with the
signing request and the signed document's SHA-256, so the audit trail shows which way each dossier
went. An event the dossier's status no longer allows (signed on paper meanwhile) is logged and
acknowledged: retrying cannot make it apply.

``esign.sealed`` can arrive before the ``esign.signed`` it follows: the queue's events are handled
concurrently, and by several replicas. A seal on a decided dossier whose signature is not recorded yet
raises :class:`SealedBeforeSigned`, which the consumer retries after its delay (``EVENT_RETRY_DELAYS``)
instead of dropping the stamp step; by then the signature is in. If it never comes, the seal is
dead-lettered after ``EVENT_MAX_ATTEMPTS``, where the operator sees it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from services.dossier import access
from services.dossier.domain.model import Action, Dossier
from services.dossier.service_layer import Change, Follow, follow
from shared.events import Event

if TYPE_CHECKING:
    from services.dossier.service_layer import Office, UnitOfWork

log = logging.getLogger(__name__)

QUEUE = "dossier.esign-events"
BINDINGS = ["esign.signed.#", "esign.sealed.#", "esign.refused.#"]
SOURCE = "esign"
ACTIONS = {"signed": "sign", "sealed": "stamp", "refused": "send_back_for_appraisal"}


class SealedBeforeSigned(Exception):
    """The seal came before the signature it follows: handled again later, not dropped."""


def change_for(event: Event) -> Change | None:
    """The change an esign event makes to its dossier; None for one that concerns no dossier."""
    data = event.data
    action = ACTIONS.get(event.name)
    if action is None:
        return None
    report = partial(
        Change,
        code=event.subject,
        actor=data["signer_sub"],
        roles=(data["signer_role"],),
        authorise=access.reported_by(event.source, SOURCE, data["signer_role"]),
        action=action,
        request_id=event.id,
        at=datetime.fromisoformat(data["occurred_at"]),
    )
    details = {"via": "esign", "request_id": data["request_id"], "signer_name": data["signer_name"]}
    if event.name == "signed":
        return report(
            reason=f"signed digitally by {data['signer_name']}",
            details={**details, "document_sha256": data["document_sha256"]},
            perform=lambda dossier, c: dossier.sign(signer_role=c.role, now=c.now),
        )
    if event.name == "sealed":

        def signature_recorded(dossier: Dossier) -> bool:
            # Signing is still the dossier's next step (the domain's own rule for the sign action).
            if Action.SIGN.value in dossier.available_actions():
                raise SealedBeforeSigned(
                    f"{event.subject}: sealed by request {data['request_id']} before its signature "
                    "was recorded; retried"
                )
            return True

        # The number the document was issued under: the portal's result document shows it.
        number = {"document_number": data["document_number"]} if data.get("document_number") else {}
        return report(
            reason=f"organisation's signature applied digitally by {data['signer_name']}",
            details={**details, "document_sha256": data["document_sha256"], **number},
            applies=signature_recorded,
            perform=lambda dossier, c: dossier.stamp(now=c.now, digital=True),
        )
    # The leader's own words are on the signing request (e-signature API), not on the bus.
    reason = (
        f"the leader refused to sign the result ({data['reason_code']}); "
        f"see signing request {data['request_id']}"
    )
    return report(
        reason=reason,
        details=details,
        reason_code=data["reason_code"],
        perform=lambda dossier, c: dossier.send_back_for_appraisal(reason=reason, now=c.now),
    )


def apply(event: Event, uow: UnitOfWork, office: Office) -> bool | None:
    """Apply one esign event to its dossier; False for a redelivery (nothing changes)."""
    return follow(Follow(event, QUEUE, change_for(event), log), uow, office)
