"""The variant table the web and the worker share, and the quantize config that selects from it."""
import pytest

from optimizers.configs.quantize import INTEGER_VARIANTS, VARIANTS, QuantizeConfig
from optimizers.configs.quantize_routes import KINDS, ROUTES, Route, kind_of_format, lookup, refusal, variant_options
from optimizers.errors import ConfigError


def test_every_variant_answers_for_every_kind_with_a_route_or_a_reason():
    assert tuple(ROUTES) == VARIANTS
    for variant in VARIANTS:
        for kind in KINDS:
            answer = lookup(variant, kind)
            assert isinstance(answer, Route) or (isinstance(answer, str) and answer)


@pytest.mark.parametrize("variant, kind, route", [
    ("dynamic_int8", "eager", "eager_dynamic"), ("dynamic_int8", "torchscript", "jit_dynamic"),
    ("dynamic_int8", "export", "export_weight_only"), ("static_int8", "eager", "fx_static"),
    ("static_int8", "torchscript", "jit_static"), ("static_int8", "export", "export_fx_static"),
    ("fp16", "onnx", "onnx_fp16"), ("onnx_dynamic_int8", "onnx", "onnx_dynamic"),
    ("onnx_static_int8", "onnx", "onnx_static"), ("weight_only_int4_cuda", "eager", "weight_only_int4_cuda"),
])
def test_the_measured_route_choice(variant, kind, route):
    assert lookup(variant, kind).name == route


def test_static_variants_need_a_dataset():
    assert refusal("static_int8", "eager", has_dataset=True) is None
    assert "needs a dataset" in refusal("static_int8", "eager", has_dataset=False)
    assert "needs a dataset" in refusal("onnx_static_int8", "onnx", has_dataset=False)
    assert refusal("dynamic_int8", "eager", has_dataset=False) is None


def test_cuda_variants_say_where_they_run():
    assert refusal("fp8_cuda", "eager", has_dataset=False) is None  # the web queues it for a CUDA worker
    assert "no CUDA device" in refusal("fp8_cuda", "eager", has_dataset=False, cuda_available=False)
    assert "state dict" in refusal("weight_only_int8_cuda", "torchscript", has_dataset=False)
    assert lookup("fp8_cuda", "eager").device == "cuda" and lookup("fp8_cuda", "eager").needs_torchao


def test_onnx_uploads_are_pointed_at_the_onnx_variants_and_back():
    assert "onnx_dynamic_int8" in refusal("dynamic_int8", "onnx", has_dataset=True)
    assert "dynamic_int8" in refusal("onnx_dynamic_int8", "export", has_dataset=True)
    assert "bfloat16" in refusal("bf16", "onnx", has_dataset=True)


def test_variant_options_list_every_variant_with_its_reason():
    options = {option["variant"]: option for option in variant_options("torchscript", has_dataset=False)}
    assert list(options) == list(VARIANTS)
    assert options["dynamic_int8"]["applicable"] and "quantize_dynamic_jit" in options["dynamic_int8"]["backend"]
    assert not options["static_int8"]["applicable"] and "needs a dataset" in options["static_int8"]["reason"]
    assert not options["onnx_static_int8"]["applicable"] and options["onnx_static_int8"]["backend"] is None
    assert options["fp8_cuda"]["reason"]


def test_upload_formats_map_to_model_kinds():
    assert [kind_of_format(fmt) for fmt in ("safetensors", "torchscript", "export", "onnx", "hf")] == list(KINDS)
    with pytest.raises(ValueError, match="unknown model format"):
        kind_of_format("pickle")
    with pytest.raises(ValueError, match="unknown quantize variant"):
        lookup("int3", "eager")


def test_the_table_and_the_config_import_no_torch(run_python):
    code = ("import sys, optimizers.configs.quantize_routes, optimizers.configs.quantize; "
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'torch imported'")
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr


def test_config_defaults_are_the_accurate_ones():
    config = QuantizeConfig()
    assert (config.variant, config.per_channel, config.budget_metric) == ("dynamic_int8", True, "none")
    assert QuantizeConfig.from_dict({"variant": "dynamic_int8", "per_channel": True, "layers": "linear"})


def test_a_budget_on_a_float_variant_names_the_field():
    with pytest.raises(ConfigError) as caught:
        QuantizeConfig(variant="bf16", budget_metric="cosine")
    assert caught.value.field == "budget_metric" and "integer variants" in caught.value.message
    assert set(INTEGER_VARIANTS) < set(VARIANTS)


@pytest.mark.parametrize("field, value", [("budget_min", 1.5), ("calibration_samples", 2), ("budget_samples", 0),
                                          ("budget_metric", "mse"), ("variant", "int4")])
def test_bad_values_name_their_field(field, value):
    with pytest.raises(ConfigError) as caught:
        QuantizeConfig.from_dict({field: value})
    assert caught.value.field == field


def test_every_field_has_help_and_limits_for_the_form():
    for entry in QuantizeConfig.describe_fields():
        assert entry["help"]
        assert entry["choices"] or entry["type"] == "boolean" or "min" in entry


def test_static_configs_say_why_they_need_a_dataset_for_the_submit_check():
    assert "calibrates" in QuantizeConfig(variant="static_int8").needs_dataset()
    assert "labels not needed" in QuantizeConfig(variant="onnx_static_int8").needs_dataset()
    assert QuantizeConfig().needs_dataset() is None
