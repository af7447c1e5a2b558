from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.errors import ValidationFailed
from conveyor.providers.template import (
    Placeholder,
    TemplateVariablesMissing,
    placeholders,
    render,
)

# JSON-like values; strings may contain braces so substituted text is tested for rescans.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)


def test_seed_003_request_schema_renders_nested_objects_and_arrays() -> None:
    template = {
        "model": "bytedance/seedance-1.5-pro",
        "input": {
            "prompt": "{{prompt}}",
            "input_urls": ["{{url}}"],
            "aspect_ratio": "{{aspect_ratio}}",
            "duration": "{{duration}}",
        },
    }
    variables = {
        "prompt": "Two people arm wrestling",
        "url": "https://s3.example/123.jpg",
        "aspect_ratio": "16:9",
        "duration": "8",
    }
    assert render(template, variables) == {
        "model": "bytedance/seedance-1.5-pro",
        "input": {
            "prompt": "Two people arm wrestling",
            "input_urls": ["https://s3.example/123.jpg"],
            "aspect_ratio": "16:9",
            "duration": "8",
        },
    }


def test_a_whole_placeholder_keeps_the_type_and_embedded_ones_make_text() -> None:
    variables = {"w": 992, "safe": True, "opts": {"a": [1, 2]}, "key": "abc"}
    rendered = render(
        {"width": "{{w}}", "safe": "{{ safe }}", "opts": "{{opts}}", "auth": "Bearer {{key}}"},
        variables,
    )
    assert rendered == {"width": 992, "safe": True, "opts": {"a": [1, 2]}, "auth": "Bearer abc"}
    assert render("size {{w}}x{{w}}, safe={{safe}}, {{opts}}", variables) == (
        'size 992x992, safe=true, {"a":[1,2]}'
    )


def test_a_list_in_a_list_element_is_spliced() -> None:
    assert render(["{{urls}}"], {"urls": ["a", "b"]}) == ["a", "b"]
    assert render(["{{urls}}", "c"], {"urls": ["a"]}) == ["a", "c"]
    assert render(["{{url}}"], {"url": "a"}) == ["a"]
    # Outside a list a list value is kept as it is.
    assert render({"x": "{{urls}}"}, {"urls": ["a", "b"]}) == {"x": ["a", "b"]}


def test_dotted_names_read_nested_values_and_indexes() -> None:
    variables = {"state": {"status_url": "https://q/1/status"}, "urls": ["u0", "u1"]}
    assert render("{{state.status_url}}", variables) == "https://q/1/status"
    assert render("{{urls.1}}", variables) == "u1"


@pytest.mark.parametrize("name", ["urls.2", "urls.-3", "urls.99"])
def test_an_index_past_the_end_is_a_missing_variable_not_a_crash(name: str) -> None:
    template = {"image_url": "{{" + name + "}}", "caption": "see {{" + name + "}}"}
    with pytest.raises(TemplateVariablesMissing) as caught:
        render(template, {"urls": ["u0", "u1"]}, context="acme/paint submit")
    # A client's input that names too few URLs: a located 422, not an IndexError (a 500).
    assert caught.value.status_code == 422
    assert caught.value.missing == [name]
    assert caught.value.message == f"missing template variables for acme/paint submit: {name}"
    # Optional, it is simply left out.
    assert render({"third": "{{" + name + "?}}"}, {"urls": ["u0", "u1"]}) == {}


def test_optional_placeholders_drop_their_key_or_element() -> None:
    template = {"seed": "{{seed?}}", "list": ["{{a?}}", "b"], "text": "x{{a?}}y", "keep": 1}
    assert render(template, {}) == {"list": ["b"], "text": "xy", "keep": 1}
    assert render(template, {"seed": None}) == {"list": ["b"], "text": "xy", "keep": 1}
    assert render(template, {"seed": 7, "a": "A"})["seed"] == 7


def test_a_present_null_stays_null() -> None:
    assert render({"cb": "{{callback}}"}, {"callback": None}) == {"cb": None}


def test_each_renders_a_template_per_item_and_splices() -> None:
    template = [
        {"type": "text", "text": "{{prompt}}"},
        {
            "$each": "images",
            "as": "image",
            "template": {"type": "image_url", "image_url": {"url": "{{image}}"}},
        },
    ]
    rendered = render(template, {"prompt": "describe", "images": ["u1", "u2"]})
    assert rendered == [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "u1"}},
        {"type": "image_url", "image_url": {"url": "u2"}},
    ]
    optional = [{"$each": "images?", "as": "i", "template": "{{i}}"}]
    assert render(optional, {}) == []
    assert placeholders(template) == [Placeholder("prompt", False), Placeholder("images", False)]


def test_every_missing_variable_is_reported_at_once() -> None:
    with pytest.raises(TemplateVariablesMissing) as caught:
        render(
            {"a": "{{prompt}}", "b": ["{{image_url}}"], "c": "x {{prompt}} {{style}}"},
            {},
            context="acme/paint submit",
        )
    error = caught.value
    assert isinstance(error, ValidationFailed)
    assert error.status_code == 422
    assert error.missing == ["prompt", "image_url", "style"]
    assert "acme/paint submit" in error.message
    assert "prompt, image_url, style" in error.message


def test_dict_keys_are_literal() -> None:
    assert render({"{{k}}": "{{v}}"}, {"k": "x", "v": 1}) == {"{{k}}": 1}


@given(json_values)
def test_templates_without_placeholders_render_to_themselves(value: Any) -> None:
    if "{{" in json.dumps(value):
        return
    assert render(value, {}) == value


@given(names, json_values)
def test_a_whole_placeholder_preserves_any_value(name: str, value: Any) -> None:
    assert render({"k": "{{" + name + "}}"}, {name: value}) == {"k": value}


@given(names, st.text(), st.text())
def test_substituted_text_is_never_expanded_again(name: str, value: str, other: str) -> None:
    variables = {name: value, "other": other}
    sneaky = value + "{{other}}"
    assert render("<{{" + name + "}}>", {**variables, name: sneaky}) == f"<{sneaky}>"
    assert render({"x": "{{" + name + "}}"}, {name: {"nested": "{{other}}"}}) == {
        "x": {"nested": "{{other}}"}
    }


@given(names, st.lists(scalars, max_size=5))
def test_list_elements_splice_lists_and_wrap_scalars(name: str, items: list[Any]) -> None:
    assert render(["{{" + name + "}}"], {name: items}) == items


@given(names, scalars.filter(lambda v: v is not None and not isinstance(v, list)))
def test_a_single_value_in_an_array_stays_an_array(name: str, value: Any) -> None:
    assert render(["{{" + name + "}}"], {name: value}) == [value]


@given(st.lists(names, min_size=1, max_size=5, unique=True))
def test_missing_names_are_listed_in_order_of_appearance(missing: list[str]) -> None:
    template = {f"k{i}": "{{" + name + "}}" for i, name in enumerate(missing)}
    with pytest.raises(TemplateVariablesMissing) as caught:
        render(template, {})
    assert caught.value.missing == missing
