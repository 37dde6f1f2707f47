"""The crew's shared memory: normalised step records and where they go."""

from memory.recorder import RunRecorder
from memory.records import SCHEMA_VERSION, StepRecord

__all__ = ["SCHEMA_VERSION", "RunRecorder", "StepRecord"]
