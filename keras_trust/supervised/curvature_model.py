"""`CurvatureModel`: any Keras model trained by `fit()` with `NaturalGradient` or `TrustRegion`."""

import keras
import tensorflow as tf

from keras_trust.ops.flat import tf_variables
from keras_trust.optimizers import NaturalGradient, TrustRegion
from keras_trust.supervised.predictive import mean_kl, output_kls, predictive_kl

CURVATURE_OPTIMIZERS = (NaturalGradient, TrustRegion)


@keras.saving.register_keras_serializable(package="keras_trust")
class CurvatureModel(keras.Model):
    """Wraps a Keras model so that `fit()` steps it with a curvature optimizer.

    `NaturalGradient` and `TrustRegion` need, besides the loss, the KL whose Hessian is
    their metric; a plain `model.compile(optimizer=NaturalGradient(), ...)` has none, and
    its `fit` fails. This model shares the layers and variables of `model` (training the
    wrapper trains `model`; `wrapped(x)` is `model(x)`) and owns a `train_step` that
    supplies the KL: that of the predictive distribution behind the compiled loss
    (Categorical for (sparse) categorical cross-entropy, Bernoulli for binary
    cross-entropy, unit-variance Gaussian for MSE; see `predictive_kl`), so the metric is
    the loss's generalized Gauss-Newton matrix `J^T H J` (Martens, 2020). `kl_fn` is the
    sample-weighted mean over the batch of KL(predictions at the start of the step, held
    fixed || current predictions), summed over outputs with their loss weights. A loss
    with no such distribution is a `ValueError` at `compile`.

    Each step runs `optimizer.minimize(loss_fn, trainable_variables, kl_fn)` inside the
    compiled train function (conjugate gradient on Fisher-vector products, in the graph).
    Every forward pass of the step runs in training mode from the non-trainable state
    (BatchNorm moving statistics, Dropout seed state) saved at the step's start: the
    Dropout mask and the batch statistics are the same in every pass, so `loss_fn` and
    `kl_fn` are deterministic functions of the weights, the KL is exactly 0 at the start,
    its Hessian is the Gauss-Newton matrix of the very loss being minimized, and the line
    search of `TrustRegion` compares like with like. After the step the state is the
    one after a single training pass at the step's starting weights: moving statistics
    move once per step, as in Keras's own `train_step`.

    Logs: `loss` and the compiled metrics (at the step's starting weights, as Keras logs
    them), `kl` (mean measured KL of the steps), `accepted` (fraction of steps taken)
    and, for `TrustRegion`, `backtracks` (mean line-search shrinks). With any other
    optimizer (`"adam"`, ...) the wrapper trains like `model` would.

    Args:
        model: the Keras model to train: Sequential, functional or subclassed.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> wrapped = CurvatureModel(model)
    >>> wrapped.compile(optimizer=kt.optimizers.NaturalGradient(max_kl=0.01),
    ...                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...                 metrics=["accuracy"])
    >>> history = wrapped.fit(np.ones((8, 4)), np.zeros(8), verbose=0)  # doctest: +SKIP
    >>> sorted(history.history)                                          # doctest: +SKIP
    ['accepted', 'accuracy', 'kl', 'loss']
    """

    def __init__(self, model: keras.layers.Layer, **kwargs):
        if not isinstance(model, keras.layers.Layer):
            raise ValueError(f"CurvatureModel wraps a Keras model. Received: model={model!r}")
        super().__init__(**kwargs)
        self.model = model
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.accepted_tracker = keras.metrics.Mean(name="accepted")
        self.backtracks_tracker = keras.metrics.Mean(name="backtracks")
        self._kl_loss_weights = None

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    @property
    def output_names(self):
        """The inner model's output names (what a dict of losses or metrics is keyed by)."""
        return getattr(self.model, "output_names", None)

    @property
    def uses_curvature(self) -> bool:
        """Whether the compiled optimizer is `NaturalGradient` or `TrustRegion`."""
        return isinstance(getattr(self, "optimizer", None), CURVATURE_OPTIMIZERS)

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, **kwargs):
        """`keras.Model.compile`; with a curvature optimizer, checks that it can run.

        Raises:
            ValueError: with `NaturalGradient`/`TrustRegion`: no loss, a loss without a
                predictive distribution (named in the message), mixed-precision loss
                scaling, or a distribution strategy with several replicas.
        """
        optimizer = keras.optimizers.get(optimizer)
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        if isinstance(inner, CURVATURE_OPTIMIZERS):
            self._check_curvature_setup(inner, optimizer, loss, kwargs)
        super().compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights, **kwargs)
        self._kl_loss_weights = loss_weights

    def compile_from_config(self, config):
        # Keras skips compile() on load for models that override it; this one only adds
        # checks, so loading a .keras file compiles it as saved (the optimizer included).
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def _check_curvature_setup(self, inner, optimizer, loss, kwargs):
        name = type(inner).__name__
        if loss is None:
            raise ValueError(
                f"{name} needs a compiled loss whose predictive distribution defines its "
                "metric: pass compile(loss=...)."
            )
        for one in tf.nest.flatten(loss):
            if one is not None:
                predictive_kl(one)
        scaled = optimizer is not inner or (
            self.dtype_policy.name == "mixed_float16" and kwargs.get("auto_scale_loss", True)
        )
        if scaled:
            raise ValueError(
                f"{name} does not support mixed-precision loss scaling (its step is solved "
                "in the variables' precision): use a float32 dtype policy."
            )
        if self.distribute_strategy.num_replicas_in_sync > 1:
            raise ValueError(
                f"{name} in CurvatureModel runs on one replica: its gradient and Fisher "
                "products are not aggregated across replicas."
            )

    @property
    def metrics(self):
        trackers = [self.kl_tracker, self.accepted_tracker, self.backtracks_tracker]
        others = [m for m in super().metrics if all(m is not t for t in trackers)]
        return others + self._step_trackers()

    def _step_trackers(self) -> list:
        if not self.uses_curvature:
            return []
        if isinstance(self.optimizer, TrustRegion):
            return [self.kl_tracker, self.accepted_tracker, self.backtracks_tracker]
        return [self.kl_tracker, self.accepted_tracker]

    def train_step(self, data):
        if not self.uses_curvature:
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        state = tf_variables(self.non_trainable_variables)
        start = [tf.identity(v) for v in state]

        def forward():
            # From the step's starting state: the same Dropout mask and batch statistics.
            for variable, value in zip(state, start):
                variable.assign(value)
            return self(x, training=True)

        y_old = tf.nest.map_structure(tf.stop_gradient, forward())
        end = [tf.identity(v) for v in state]
        # Logged once, at the starting weights; minimize's own loss evaluations
        # (per-output loss trackers included) are undone below.
        loss = self.compute_loss(x, y, y_old, sample_weight, training=True)
        metric_variables = tf_variables(self.metrics_variables)
        logged = [tf.identity(v) for v in metric_variables]
        terms = output_kls(self.loss, self._kl_loss_weights, y_old, self.output_names)

        def loss_fn():
            return self.compute_loss(x, y, forward(), sample_weight, training=True)

        def kl_fn():
            return mean_kl(terms, y_old, forward(), sample_weight, self.output_names)

        info = self.optimizer.minimize(loss_fn, self.trainable_variables, kl_fn)
        for variable, value in zip(state + metric_variables, end + logged):
            variable.assign(value)
        batch_size = tf.shape(tf.nest.flatten(x)[0])[0]
        # Keras's own "loss" tracker (what its train_step updates; compile() makes it).
        self._loss_tracker.update_state(loss, sample_weight=batch_size)
        self.kl_tracker.update_state(info["kl"])
        self.accepted_tracker.update_state(tf.cast(info["accepted"], "float32"))
        self.backtracks_tracker.update_state(tf.cast(info["backtracks"], "float32"))
        return self.compute_metrics(x, y, y_old, sample_weight)

    def test_step(self, data):
        # The step trackers describe training steps: evaluate() reports none of them.
        logs = super().test_step(data)
        names = {t.name for t in self._step_trackers()}
        return {k: v for k, v in logs.items() if k not in names}

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model": keras.saving.serialize_keras_object(self.model),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(
            config.pop("model"), custom_objects=custom_objects
        )
        return cls(model, **config)
