"""``python -m cosmos_upsample_fix.launch SCRIPT ...``: the launcher's public path.

The code lives in :mod:`cosmos_upsample_fix.tools.launch`.
"""
from __future__ import annotations

import sys

from cosmos_upsample_fix.tools.launch import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
