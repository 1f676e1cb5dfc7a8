"""``python -m kws_proto.cli``: the same as the ``kws-proto`` command."""

import sys

from kws_proto.cli import main

sys.exit(main())
