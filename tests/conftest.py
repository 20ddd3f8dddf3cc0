"""Shared fixtures: the exchange simulator (and, later, the broker and supervisord)."""
import pytest

from common.exchanges import create_exchange
from tests.simulator import Simulator


@pytest.fixture(scope="session")
def simulator():
    sim = Simulator(extra_markets=5).start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(simulator):
    """The shared simulator, reset to a clean state (no faults, no log, fresh rate-limit windows)."""
    simulator.reset()
    yield simulator
    simulator.reset()


@pytest.fixture
def make_client(sim):
    """Build a real ccxt client for a config name, pointed at the simulator."""
    def make(name, **kwargs):
        kwargs.setdefault("timeout_ms", 3000)
        return create_exchange(name, api_url=sim.api_url(name), **kwargs)
    return make
