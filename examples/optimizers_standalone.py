"""The trust-region optimizers outside an agent: fit a softmax classifier in KL steps.

`TrustRegion.minimize(loss_fn, var_list, kl_fn)` takes a natural-gradient step whose
KL between the model's old and new predictive distributions stays within `max_kl`.

Run: python examples/optimizers_standalone.py
"""

import argparse

import keras
import numpy as np
import tensorflow as tf

import keras_trust as kt


def main(steps: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(16, "tanh"), keras.layers.Dense(2)]
    )
    opt = kt.optimizers.TrustRegion(max_kl=0.05)
    old_logits = tf.Variable(model(x))  # the frozen "old" distribution, kept in a variable

    def loss_fn():
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model(x))
        )

    def kl_fn():
        kl = kt.distributions.kl_divergence("categorical", [old_logits], [model(x)])
        return tf.reduce_mean(kl)

    for step in range(steps):
        old_logits.assign(model(x))
        info = opt.minimize(loss_fn, model.trainable_variables, kl_fn)
        if step % 5 == 0 or step == steps - 1:
            print(
                f"step {step}: loss {float(info['loss_after']):.4f} kl {float(info['kl']):.4f} "
                f"backtracks {int(info['backtracks'])}"
            )
    accuracy = float(np.mean(np.argmax(model(x), -1) == y))
    print(f"training accuracy: {accuracy:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    main(parser.parse_args().steps)
