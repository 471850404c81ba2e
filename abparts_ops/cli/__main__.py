"""``python -m abparts_ops.cli``: the same as the ``abparts-ops`` console script."""

import sys

from abparts_ops.cli import main

sys.exit(main())
