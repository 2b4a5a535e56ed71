"""Models by name (`model=mlp`). Each builder takes the whole config and the data's spec."""

from dlbasics.models.base import MODELS, Model, build_model

# Importing the modules registers their models.
from dlbasics.models import cnn, dbn, dnn, mlp, perceptron, rbm, rnn, seq2seq, transformer  # noqa: E402,F401,E501  isort: skip

__all__ = ["MODELS", "Model", "build_model"]
