"""Run a script as ``__main__`` with the recorder on the real ``vllm.LLM``; write what it saw as JSON.

    python recorded_run.py RECORD.json SCRIPT ARGS...
    python -m cosmos_upsample_fix.launch recorded_run.py RECORD.json SCRIPT ARGS...

The launcher runs this file as its script, so SCRIPT runs exactly as under the launcher, with
the engine builds and requests recorded (``recording.Recorder``); the record (with the
plugin's log lines) is written also when SCRIPT fails.
"""
from __future__ import annotations

import json
import logging
import os
import runpy
import sys
from pathlib import Path

from recording import Recorder


class Lines(logging.Handler):
    """Keeps the plugin's log lines (INFO and above) for the record."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def main() -> None:
    record, script, *args = sys.argv[1:]
    import vllm

    recorder = Recorder()
    recorder.attach(vllm.LLM)
    lines = Lines()
    logging.getLogger("cosmos_upsample_fix").addHandler(lines)
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        Path(record).write_text(json.dumps({**json.loads(recorder.to_json()), "log": lines.lines}))


if __name__ == "__main__":
    main()
