"""`straight_line`: marks graph code that AutoGraph need not rewrite.

`tf.function` runs every Python function it meets through AutoGraph, which parses and
rewrites its source: about a second per agent for the ~30 helpers of an update. Helpers
whose Python control flow never depends on a tensor (loops are explicit `tf.while_loop`s,
branches test Python values) gain nothing from that, so they carry this decorator and run
as written. TRPO's whole update is written this way (its loops are `tf.while_loop`s); PPO's
epoch loop (`PPO._train`) and minibatch step still go through AutoGraph.
"""

import tensorflow as tf

straight_line = tf.autograph.experimental.do_not_convert
