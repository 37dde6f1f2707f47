"""The manager, the specialists and the router that plans between them."""

from agents.router import RoutePlan, Router, RouteStep
from agents.specialists import SPECIALISTS, Specialist

__all__ = ["SPECIALISTS", "RoutePlan", "RouteStep", "Router", "Specialist"]
