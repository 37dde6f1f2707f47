"""Memory sinks: one interface (`MemorySink`), one module per backend."""

from smolcrew.memory.sinks.base import Capability, MemorySink, SinkHealth

__all__ = ["Capability", "MemorySink", "SinkHealth"]
