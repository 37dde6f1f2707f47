"""Specialist tools (smolagents Tools) and the PipelinePool that serves their models."""

from smolcrew.tools.pool import PipelineKey, PipelinePool

__all__ = ["PipelineKey", "PipelinePool"]
