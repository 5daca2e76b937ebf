"""A job for tests/unit/test_background.py: writes its own nice value, or fails
when ``DS_JOB_FAIL`` is set."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests import background

MODULE = __name__

if __name__ == "__main__":
    if os.environ.get("DS_JOB_FAIL"):
        sys.exit("failing on purpose")
    background.write(Path(sys.argv[1]), str(os.nice(0)).encode())
