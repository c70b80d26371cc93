"""The package's exception types: one base class, one subclass per kind of failure.

Every error the package raises on purpose is an :class:`UpsampleFixError` whose
message is a single line, so the CLI (and a Cosmos log) can show it as is.
"""
from __future__ import annotations


class UpsampleFixError(Exception):
    """Base class of every error this package raises on purpose (message is one line)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class InputError(UpsampleFixError):
    """The input (video, image, or frame list) cannot be read as asked."""


class PolicySpecError(UpsampleFixError):
    """A policy string (or another option) is malformed."""


class BudgetError(UpsampleFixError):
    """The request cannot be made to fit the model's context under the chosen policy."""


class ModelConfigError(UpsampleFixError):
    """The checkpoint folder's tokenizer or params cannot be read."""


class PatchError(UpsampleFixError):
    """The shipped source patch cannot be applied to or reverted from a tree."""


class EndpointError(UpsampleFixError):
    """The upsampler endpoint cannot be reached, refused the request, or answered nonsense."""


class OutputExistsError(InputError, FileExistsError):
    """A file the package would write is already there; it is never overwritten.

    Also a FileExistsError, so code that guards an exclusive create that way still catches it.
    """
