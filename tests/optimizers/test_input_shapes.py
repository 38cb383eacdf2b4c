import pytest

from optimizers.shapes import SUPPORTED_DTYPES, check_input_shape, parse_dtype, parse_input_shape


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1,3,32,32", (1, 3, 32, 32)),
        (" 1 , 3, 32 ,32 ", (1, 3, 32, 32)),
        ("8", (8,)),
        ("1,2,3,4,5,6", (1, 2, 3, 4, 5, 6)),
    ],
)
def test_parse_input_shape_accepts_comma_separated_dims(text, expected):
    assert parse_input_shape(text) == expected


@pytest.mark.parametrize("text", ["abc", "", "1,,3", "1;3", "1.5,3", "-1,3", "1,3,", "[1,3]", "١,٣"])
def test_parse_input_shape_rejects_text_that_is_not_integers(text):
    with pytest.raises(ValueError, match=r"comma-separated positive integers, e\.g\. 1,3,32,32; got"):
        parse_input_shape(text)


def test_parse_input_shape_message_quotes_the_input():
    with pytest.raises(ValueError) as caught:
        parse_input_shape("abc")
    assert str(caught.value) == (
        "input shape must be comma-separated positive integers, e.g. 1,3,32,32; got 'abc'"
    )


@pytest.mark.parametrize(
    "text, problem",
    [
        ("0,3", "dimension 0 must be at least 1"),
        ("1,3,70000", "dimension 2 must be at most 65536"),
        ("1,1,1,1,1,1,1", "1 to 6 dimensions; got 7"),
        ("1000,1000,1000", "the limit is 50,000,000"),
    ],
)
def test_parse_input_shape_enforces_limits(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_input_shape(text)


def test_limits_allow_the_largest_legal_shape():
    assert parse_input_shape("50,1000,1000") == (50, 1000, 1000)


@pytest.mark.parametrize("dims", [[1, True], "1,3", [1.0, 3], None, []])
def test_check_input_shape_rejects_non_integer_lists(dims):
    with pytest.raises(ValueError, match="input shape"):
        check_input_shape(dims)


def test_parse_dtype_accepts_each_supported_dtype():
    assert [parse_dtype(name) for name in SUPPORTED_DTYPES] == list(SUPPORTED_DTYPES)


def test_parse_dtype_lists_the_choices():
    with pytest.raises(ValueError, match="float32, float16, bfloat16, int64; got 'double'"):
        parse_dtype("double")
