"""``python -m codepilot_operator.cli``: the same command as ``codepilot``."""

import sys

from codepilot_operator.cli.main import main

sys.exit(main())
