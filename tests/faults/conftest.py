"""Fixtures of the fault tests: servers of their own that they may stop and crash (tests/faults/servers.py)."""

import pytest

from tests.faults.servers import start_private_postgres


@pytest.fixture(scope="module")
def private_postgres():
    """A PostgreSQL cluster for this module alone, on a free port; removed afterwards."""
    server = start_private_postgres()
    try:
        yield server
    finally:
        server.destroy()
