"""`python -m keras_trust ...` is the `keras-trust` command.

Importing the package has already quieted TensorFlow's start-up logs for this process
(`keras_trust.command.prepare_command_process`).
"""

import sys

from keras_trust.cli import main

sys.exit(main())
