from __future__ import annotations

import json

import pytest

from conveyor.providers.extract import (
    MISSING,
    ErrorExtractor,
    PathSyntaxError,
    ResultExtractor,
    StatusMapper,
    parse_path,
)

GENAPI_RESULT = {"request_id": 1, "status": "success", "result": ["https://cdn/x.png"]}
GENAPI_FULL = {"status": "success", "full_response": [{"url": "https://cdn/y.png"}]}
KIE_DONE = {
    "code": 200,
    "data": {
        "state": "success",
        "resultJson": json.dumps({"resultUrls": ["https://kie/v.mp4", "https://kie/w.mp4"]}),
    },
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("result[0]", "https://cdn/x.png"),
        ("full_response[0].url", MISSING),
        ("status", "success"),
        ("result[-1]", "https://cdn/x.png"),
        ("result[1]", MISSING),
        ("status.deeper", MISSING),
        ("", GENAPI_RESULT),
        ("$", GENAPI_RESULT),
        ("$.request_id", 1),
    ],
)
def test_paths_read_values_or_missing(path: str, expected: object) -> None:
    assert parse_path(path).get(GENAPI_RESULT) == expected


def test_json_inside_a_string_is_parsed_by_the_json_step() -> None:
    assert parse_path("data.resultJson|json.resultUrls[0]").get(KIE_DONE) == "https://kie/v.mp4"
    assert parse_path("data.resultJson|json.resultUrls").get(KIE_DONE) == [
        "https://kie/v.mp4",
        "https://kie/w.mp4",
    ]
    # Already parsed, empty, or broken: no exception, just a value or MISSING.
    assert parse_path("a|json.b").get({"a": {"b": 1}}) == 1
    assert parse_path("a|json.b").get({"a": ""}) is MISSING
    assert parse_path("a|json.b").get({"a": "{broken"}) is MISSING


def test_json_step_accepts_code_fences_from_chat_models() -> None:
    content = '```json\n{"category": "electronics"}\n```'
    assert parse_path("c|json.category").get({"c": content}) == "electronics"


def test_each_step_collects_from_every_element() -> None:
    answer = {"images": [{"url": "a"}, {"nope": 1}, {"url": "b"}]}
    assert parse_path("images[*].url").get(answer) == ["a", "b"]
    assert parse_path("images[*].url").get({"images": "x"}) is MISSING


def test_quoted_keys_allow_dots_and_brackets() -> None:
    answer = {"a.b": {"c[0]": 5}}
    assert parse_path('["a.b"]["c[0]"]').get(answer) == 5
    assert parse_path("['a.b']").get(answer) == {"c[0]": 5}


@pytest.mark.parametrize(
    ("path", "position"),
    [("a[", 1), ("a[x]", 1), ("a..b", 2), ("a|yaml", 1), ("a.", 2), ("$x", 1)],
)
def test_syntax_errors_name_the_position(path: str, position: int) -> None:
    with pytest.raises(PathSyntaxError) as caught:
        parse_path(path)
    assert caught.value.position == position
    assert repr(path) in str(caught.value)


def test_result_extractor_takes_the_first_path_holding_something() -> None:
    extractor = ResultExtractor("file", ["result[0]", "full_response[0].url"])
    found = extractor.extract(GENAPI_RESULT)
    assert found is not None
    assert (found.value, found.path) == ("https://cdn/x.png", "result[0]")
    found = extractor.extract(GENAPI_FULL)
    assert found is not None
    assert (found.value, found.path) == ("https://cdn/y.png", "full_response[0].url")
    assert extractor.extract({"status": "success", "result": []}) is None
    assert extractor.extract({"result": [""], "full_response": [{"url": "u"}]}) is not None


def test_result_extractor_shapes_by_kind() -> None:
    assert ResultExtractor("file", ["output"]).extract({"output": ["a", "b"]}).value == "a"  # type: ignore[union-attr]
    assert ResultExtractor("file", ["output"]).extract({"output": "a"}).value == "a"  # type: ignore[union-attr]
    assert ResultExtractor("files", ["output"]).extract({"output": "a"}).value == ["a"]  # type: ignore[union-attr]
    files = ResultExtractor("files", ["data.resultJson|json.resultUrls"]).extract(KIE_DONE)
    assert files is not None
    assert files.value == ["https://kie/v.mp4", "https://kie/w.mp4"]
    assert ResultExtractor("text", ["t"]).extract({"t": {"a": 1}}).value == '{"a": 1}'  # type: ignore[union-attr]
    assert ResultExtractor("json", ["t"]).extract({"t": {"a": 1}}).value == {"a": 1}  # type: ignore[union-attr]
    assert ResultExtractor("file", ["output"]).extract({"output": [1, {}]}) is None


def test_status_mapper_is_case_insensitive_and_unknown_is_not_an_error() -> None:
    mapper = StatusMapper(
        "status",
        running=["starting", "pending", "processing"],
        success=["success"],
        failed=["failed", "error"],
    )
    assert mapper.state({"status": "Processing"}) == "running"
    assert mapper.state({"status": "success"}) == "success"
    assert mapper.state({"status": "error"}) == "failed"
    assert mapper.state({"status": "warming_up"}) == "unknown"
    assert mapper.raw({}) is None
    assert mapper.state({}) == "unknown"


def test_status_mapper_failed_when_a_done_answer_carries_an_error() -> None:
    mapper = StatusMapper(
        "status", running=["IN_QUEUE"], success=["COMPLETED"], failed_when=["error"]
    )
    assert mapper.state({"status": "COMPLETED"}) == "success"
    assert mapper.state({"status": "COMPLETED", "error": None}) == "success"
    # An empty error is no error (fal sends "error": "" with a good result).
    assert mapper.state({"status": "COMPLETED", "error": ""}) == "success"
    assert mapper.state({"status": "COMPLETED", "error": []}) == "success"
    assert mapper.state({"status": "COMPLETED", "error": {}}) == "success"
    assert mapper.state({"status": "COMPLETED", "error": "runner died"}) == "failed"
    assert mapper.state({"status": "IN_QUEUE", "error": "x"}) == "running"
    assert StatusMapper("task_status", success=["3"]).state({"task_status": 3}) == "success"


def test_error_extractor_finds_human_messages_in_any_shape() -> None:
    extractor = ErrorExtractor(["error.message", "error", "detail", "msg"])
    assert extractor.message({"error": {"message": "bad key", "type": "x"}}) == "bad key"
    assert extractor.message({"error": "NSFW content"}) == "NSFW content"
    fal_validation = {"detail": [{"loc": ["body", "prompt"], "msg": "field required"}]}
    assert extractor.message(fal_validation) == "field required"
    assert extractor.message({"msg": "Insufficient Credits"}) == "Insufficient Credits"
    assert extractor.message({"error": "", "detail": None}) is None
    assert extractor.message("not even an object") is None
