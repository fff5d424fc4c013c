"""Which failures mean "the database is away, retry in a moment" (503, a consumer retrying), not a bug."""

from __future__ import annotations

import asyncpg
import pytest
import sqlalchemy as sa

from cpts_platform.db import database_unavailable
from cpts_platform.dev.broker import free_port


class _DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("driver error")
        self.sqlstate = sqlstate


async def test_a_refused_connection_raised_by_the_driver_is_unavailability():
    with pytest.raises(OSError) as refused:
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/none", timeout=2)
    assert database_unavailable(refused.value)


def test_an_os_error_of_the_application_is_not():
    try:
        raise ConnectionRefusedError("somewhere else")
    except ConnectionRefusedError as exc:
        assert not database_unavailable(exc)


@pytest.mark.parametrize(
    ("sqlstate", "unavailable"),
    [
        ("57P03", True),  # cannot connect now: starting up
        ("57P01", True),  # admin shutdown
        ("08006", True),  # connection failure
        ("53300", True),  # too many connections
        ("23505", False),  # unique violation: the statement's fault
        (None, False),
    ],
)
def test_driver_errors_by_sqlstate(sqlstate, unavailable):
    error = sa.exc.DBAPIError("SELECT 1", {}, _DriverError(sqlstate))
    assert database_unavailable(error) is unavailable


def test_operational_errors_and_pool_timeouts_are_unavailability():
    assert database_unavailable(sa.exc.OperationalError("SELECT 1", {}, Exception("database is locked")))
    assert database_unavailable(sa.exc.TimeoutError("QueuePool limit reached"))
    assert not database_unavailable(ValueError("bad"))
