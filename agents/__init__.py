"""The manager, the specialists and the router that plans between them."""

from smolcrew.agents.router import RoutePlan, Router, RouteStep
from smolcrew.agents.specialists import SPECIALISTS, Specialist

__all__ = ["SPECIALISTS", "RoutePlan", "RouteStep", "Router", "Specialist"]
