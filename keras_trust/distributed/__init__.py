"""Scale-out: rollout collection on Ray actors, the learner on the driver.

Ray is optional (`pip install "keras-trust[ray]"`): importing this package does not
import it; constructing a `RaySampler` does.
"""

from keras_trust.distributed.ray import RaySampler

__all__ = ["RaySampler"]
