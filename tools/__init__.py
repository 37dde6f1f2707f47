"""Specialist tools (smolagents Tools), one module per domain; the models they use come from `smolcrew.pool`."""
