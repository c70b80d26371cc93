"""Every environment variable the package reads, in one place: one prefix, the older names still read.

Names are ``COSMOS_UPSAMPLE_FIX_*``. Releases up to 0.1.0 read ``COSMOS_UPSAMPLER_POLICY``,
``COSMOS_UPSAMPLER_ENDPOINT`` and ``COSMOS_UPSAMPLER_API_KEY``; those still work, and the new
name wins when both are set.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

PREFIX = "COSMOS_UPSAMPLE_FIX_"


@dataclass(frozen=True)
class EnvVar:
    """One environment variable: its name and the older names it was read under."""

    name: str
    old: tuple[str, ...] = ()

    def get(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The stripped value under the name (else an older one); ``None`` when unset or blank."""
        env = os.environ if environ is None else environ
        for key in (self.name, *self.old):
            value = env.get(key, "").strip()
            if value:
                return value
        return None


POLICY = EnvVar(PREFIX + "POLICY", ("COSMOS_UPSAMPLER_POLICY",))
"""The policy ``install()`` uses when it is given none."""
ON_ERROR = EnvVar(PREFIX + "ON_ERROR")
"""What a failed preprocessing does inside Cosmos: raise, fallback or skip."""
ENDPOINT = EnvVar(PREFIX + "ENDPOINT", ("COSMOS_UPSAMPLER_ENDPOINT",))
"""The shared upsampler server's OpenAI base URL."""
API_KEY = EnvVar(PREFIX + "API_KEY", ("COSMOS_UPSAMPLER_API_KEY",))
"""The shared server's ``--api-key`` (never logged)."""
DISABLE = EnvVar(PREFIX + "DISABLE")
"""Preprocessor hooks to turn off, comma-separated (``all`` turns every one off)."""
ORDER = EnvVar(PREFIX + "ORDER")
"""Preprocessor hooks to run first, comma-separated, in that order."""
DEBUG = EnvVar(PREFIX + "DEBUG")
"""Set: the launcher shows a full traceback instead of its one-line error."""

ALL = (POLICY, ON_ERROR, ENDPOINT, API_KEY, DISABLE, ORDER, DEBUG)
