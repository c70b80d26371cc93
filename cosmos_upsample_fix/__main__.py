"""``python -m cosmos_upsample_fix``: the same as the ``cosmos-upsample-fix`` command."""
import sys

from cosmos_upsample_fix.tools.cli import main

sys.exit(main())
