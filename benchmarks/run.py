"""Entry point of the benchmarks: ``python -m benchmarks.run`` from the repository root
(``python benchmarks/run.py`` works too). See :mod:`benchmarks.suite` and benchmarks/README.md."""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.suite import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
