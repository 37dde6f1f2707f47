"""Checks that gate final answers (rules first; the model judge and the human queue come next)."""

from validators.rules import require_answer

__all__ = ["require_answer"]
