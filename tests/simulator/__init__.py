"""An HTTP stand-in for five exchanges' REST APIs; see server.py and the README."""
from tests.simulator.server import Simulator

__all__ = ["Simulator"]
