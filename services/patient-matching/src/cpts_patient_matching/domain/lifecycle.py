"""The life of a patient record and of a proposal: which transitions are allowed.

Patient: ``waiting -> proposed -> mt_declared``; a declined or expired proposal sends the patient back to
``waiting``; ``withdrawn`` and ``found_elsewhere`` end the wait (from waiting or proposed, cancelling a
pending proposal); a record that ended may be enrolled again (back to ``waiting``); ``merged`` is the end of
a record absorbed into its duplicate.
"""

from __future__ import annotations

from cpts_patient_matching.domain.errors import InvalidTransition

WAITING, PROPOSED, MT_DECLARED = "waiting", "proposed", "mt_declared"
WITHDRAWN, FOUND_ELSEWHERE, MERGED = "withdrawn", "found_elsewhere", "merged"
STATUSES = (WAITING, PROPOSED, MT_DECLARED, WITHDRAWN, FOUND_ELSEWHERE, MERGED)
ACTIVE = (WAITING, PROPOSED)
ENDED = (MT_DECLARED, WITHDRAWN, FOUND_ELSEWHERE)
"""A record in one of these states is enrolled again (back to waiting) when the person is enrolled again."""

STATUS_LABELS = {
    WAITING: "en attente",
    PROPOSED: "proposé à un médecin",
    MT_DECLARED: "médecin traitant déclaré",
    WITHDRAWN: "sorti de la liste",
    FOUND_ELSEWHERE: "médecin traitant trouvé par ailleurs",
    MERGED: "fusionné avec un doublon",
}

_ALLOWED = {
    WAITING: {PROPOSED, WITHDRAWN, FOUND_ELSEWHERE, MERGED},
    PROPOSED: {MT_DECLARED, WAITING, WITHDRAWN, FOUND_ELSEWHERE, MERGED},
    MT_DECLARED: {WAITING},
    WITHDRAWN: {WAITING, MERGED},
    FOUND_ELSEWHERE: {WAITING, MERGED},
    MERGED: set(),
}

PENDING, ACCEPTED, DECLINED, EXPIRED, CANCELLED = "pending", "accepted", "declined", "expired", "cancelled"
PROPOSAL_STATUSES = (PENDING, ACCEPTED, DECLINED, EXPIRED, CANCELLED)
COUNTS_AGAINST_CAPACITY = (PENDING, ACCEPTED)
"""Proposals of the current month that use a GP's monthly capacity."""


def check_transition(current: str, target: str) -> None:
    """Raise InvalidTransition (409) unless a patient record may go from `current` to `target`."""
    if target not in _ALLOWED.get(current, set()):
        raise InvalidTransition(f"the patient is {current} ({STATUS_LABELS.get(current, current)}): "
                                f"cannot become {target}", field="status")
