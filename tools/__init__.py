"""Specialist tools (smolagents Tools) and the PipelinePool that serves their models."""

from tools.pool import PipelineKey, PipelinePool

__all__ = ["PipelineKey", "PipelinePool"]
