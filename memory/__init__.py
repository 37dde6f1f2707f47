"""The crew's shared memory: normalised step records and where they go."""

from smolcrew.memory.recorder import RunRecorder
from smolcrew.memory.records import SCHEMA_VERSION, StepRecord

__all__ = ["SCHEMA_VERSION", "RunRecorder", "StepRecord"]
