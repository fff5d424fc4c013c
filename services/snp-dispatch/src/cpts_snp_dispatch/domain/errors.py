"""What can go wrong in snp-dispatch's commands; the API maps each to a problem answer naming the field."""

from __future__ import annotations


class DispatchError(Exception):
    """Base of the domain errors; `field` names the input at fault when there is one."""

    status = 422
    field: str | None = None

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if field is not None:
            self.field = field


class InvalidSlot(DispatchError):
    """A slot that cannot be published: in the past, ending before it starts, unknown site..."""


class SlotOverlap(DispatchError):
    status = 409

    def __init__(self, detail: str, *, field: str, other_slot_id: str | None) -> None:
        super().__init__(detail, field=field)
        self.other_slot_id = other_slot_id


class UnknownProfessional(DispatchError):
    status = 404


class UnknownSlot(DispatchError):
    status = 404


class UnknownCareRequest(DispatchError):
    status = 404


class UnknownAppointment(DispatchError):
    status = 404


class SlotUnavailable(DispatchError):
    """The slot is booked, held by someone else, withdrawn, past, or not bookable: answered with 409."""

    status = 409


class EnSusCapReached(DispatchError):
    status = 409


class InvalidTransition(DispatchError):
    """A command that the current state does not allow (closing a booked request, outcome of a cancelled one)."""

    status = 409


class InvalidIntake(DispatchError):
    """A care request that cannot be taken: bad NIR key, unknown commune, birth date in the future..."""
