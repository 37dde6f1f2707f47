from __future__ import annotations

import smolcrew


def test_public_names_are_exactly_these() -> None:
    assert smolcrew.__all__ == sorted(smolcrew.__all__)
    assert smolcrew.__all__ == [
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
    for name in smolcrew.__all__:
        assert getattr(smolcrew, name).__name__ == name


def test_errors_form_one_tree() -> None:
    for name in ("AnswerRejected", "ConfigError", "CrewClosedError", "ModelUnavailableError", "SinkUnavailableError"):
        assert issubclass(getattr(smolcrew, name), smolcrew.SmolcrewError)
