"""`python -m keras_trust ...` is the `keras-trust` command."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from keras_trust.cli import main  # noqa: E402

sys.exit(main())
