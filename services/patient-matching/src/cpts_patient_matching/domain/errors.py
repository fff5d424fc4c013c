"""What can go wrong in patient-matching's commands; the API answers each with a problem naming the field."""

from __future__ import annotations


class MatchingError(Exception):
    """Base of the domain errors; `field` names the input at fault when there is one."""

    status = 422
    field: str | None = None

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if field is not None:
            self.field = field


class InvalidPatient(MatchingError):
    """Patient data that cannot be taken: bad NIR key, future birth date, unknown commune, no consent..."""


class UnknownPatient(MatchingError):
    """No such patient in this CPTS (also answered when the caller may not know it exists)."""

    status = 404


class UnknownProposal(MatchingError):
    status = 404


class UnknownDuplicate(MatchingError):
    status = 404


class InvalidTransition(MatchingError):
    """A command the current state does not allow (accepting an expired proposal, withdrawing twice...)."""

    status = 409
