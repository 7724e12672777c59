"""Pure curvature math: Fisher-vector products, conjugate gradient, line search."""

from keras_trust.ops.conjugate_gradient import conjugate_gradient
from keras_trust.ops.fisher import fisher_vector_product
from keras_trust.ops.flat import flatten, tf_variables, unflatten
from keras_trust.ops.line_search import LineSearchResult, backtracking_line_search

__all__ = [
    "LineSearchResult",
    "backtracking_line_search",
    "conjugate_gradient",
    "fisher_vector_product",
    "flatten",
    "tf_variables",
    "unflatten",
]
