"""smolcrew: a manager agent delegating to specialists that run local Hugging Face pipelines.

```python
from smolcrew import Crew
with Crew.from_config() as crew:
    print(crew.run("What is 17*23+5?").answer)
```
Importing smolcrew loads neither torch nor transformers nor smolagents: names resolve on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smolcrew.config import Settings, load_settings
    from smolcrew.conversation import ChatSession
    from smolcrew.crew import Crew
    from smolcrew.errors import (
        AnswerRejected,
        ConfigError,
        CrewClosedError,
        ModelUnavailableError,
        RoutingError,
        SinkError,
        SinkUnavailableError,
        SmolcrewError,
        ToolInputError,
    )
    from smolcrew.result import RunResult

__version__ = "0.1.0"

__all__ = [
    "AnswerRejected",
    "ChatSession",
    "ConfigError",
    "Crew",
    "CrewClosedError",
    "ModelUnavailableError",
    "RoutingError",
    "RunResult",
    "Settings",
    "SinkError",
    "SinkUnavailableError",
    "SmolcrewError",
    "ToolInputError",
    "load_settings",
]

_HOMES = {
    "ChatSession": "smolcrew.conversation",
    "Crew": "smolcrew.crew",
    "RunResult": "smolcrew.result",
    "Settings": "smolcrew.config",
    "load_settings": "smolcrew.config",
}


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = importlib.import_module(_HOMES.get(name, "smolcrew.errors"))
        return getattr(module, name)
    raise AttributeError(f"module 'smolcrew' has no attribute {name!r}")
