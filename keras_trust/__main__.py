"""`python -m keras_trust ...` is the `keras-trust` command."""

import sys

from keras_trust.cli import main

sys.exit(main())
