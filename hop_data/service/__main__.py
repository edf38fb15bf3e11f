"""``python -m hop_data.service ...``: the data-generation service (same arguments as ``hop-data generate``)."""

import sys

from hop_data.service.cli import main

sys.exit(main())
