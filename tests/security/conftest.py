"""The hostile archives are built from the model files the optimizer tests use."""
from tests.optimizers.conftest import cnn_pt2_dynamic_batch, mlp_pt2, model_dir  # noqa: F401 - fixtures, used by name
