"""Tool specs read into fielded documents, their checks, and document expansion."""

from __future__ import annotations

import json

import pytest

from retrievo.errors import DocumentError, SourceFormatError
from retrievo.structure.tools import expand_tools, load_tools, split_identifier, tool_document

WEATHER = {"type": "function", "function": {
    "name": "getWeatherByCity", "description": "Current weather for a city. Updated hourly.",
    "parameters": {"type": "object", "properties": {
        "city_name": {"type": "string", "description": "The city"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city_name"]}}}
STOCKS = {"name": "stock_quote", "description": "Latest price of a stock ticker",
          "input_schema": {"type": "object", "properties": {"ticker": {"type": ["string", "null"]}}}}


def test_split_identifier():
    assert split_identifier("getWeatherByCity") == "get weather by city"
    assert split_identifier("/v1/nutrition") == "v1 nutrition"
    assert split_identifier("serving_size_g") == "serving size g"
    assert split_identifier("HTTPServerError") == "http server error"


def test_openai_and_anthropic_forms(tmp_path):
    path = tmp_path / "tools.json"
    path.write_text(json.dumps({"tools": [WEATHER, STOCKS]}))
    a, b = load_tools(path)
    assert a.id == "getWeatherByCity" and a.title == "getWeatherByCity"
    assert "city_name (string, required): The city" in a.text and "[one of: celsius, fahrenheit]" in a.text
    assert a.metadata["name_words"] == "get weather by city"
    assert a.metadata["param_words"][0] == "city name The city"
    assert a.metadata["spec"]["parameters"]["required"] == ["city_name"]
    assert b.id == "stock_quote" and "ticker (string or null, optional)" in b.text
    # JSON Lines, one spec a line, is read the same
    jl = tmp_path / "tools.jsonl"
    jl.write_text(json.dumps(WEATHER) + "\n\n" + json.dumps(STOCKS) + "\n")
    assert [d.to_dict() for d in load_tools(jl)] == [a.to_dict(), b.to_dict()]


@pytest.mark.parametrize("spec, field", [
    ({"description": "no name"}, "field 'name' is missing"),
    ({"name": 5}, "field 'name' must be a non-empty string"),
    ({"name": "f", "description": ["x"]}, "field 'description' must be a string"),
    ({"name": "f", "parameters": {"properties": {"a": {"type": 3}}}}, "'parameters.properties.a.type'"),
    ({"name": "f", "parameters": {"properties": {"a": "int"}}}, "'parameters.properties.a' must be an object"),
    ({"name": "f", "parameters": {"properties": {}, "required": ["b"]}}, "names 'b'"),
    ({"name": "f", "parameters": {"properties": {"a": {"enum": "x"}}}}, "'parameters.properties.a.enum' must be a list"),
    ({"name": "f", "parameters": []}, "field 'parameters' must be a JSON Schema object"),
])
def test_bad_spec_names_the_tool_and_field(tmp_path, spec, field):
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([WEATHER, spec]))
    with pytest.raises(DocumentError) as e:
        load_tools(path)
    assert "tool 1" in str(e.value) and field in str(e.value)
    if "name" in spec and isinstance(spec["name"], str):
        assert "'f'" in str(e.value)


def test_bad_files(tmp_path):
    p = tmp_path / "t.json"
    p.write_text("{not json")
    with pytest.raises(SourceFormatError, match="not valid JSON"):
        load_tools(p)
    p.write_text(json.dumps([WEATHER, WEATHER]))
    with pytest.raises(DocumentError, match="also the id of"):
        load_tools(p)
    p.write_text("[]")
    with pytest.raises(SourceFormatError, match="no tool specs"):
        load_tools(p)


def test_expansion_fields():
    docs = [tool_document(WEATHER), tool_document(STOCKS)]
    queries = {"q1": "is it raining in Paris", "q2": "price of AAPL", "q3": "weather in Oslo tomorrow", "q4": "x"}
    qrels = {"q1": {"getWeatherByCity": 1}, "q2": {"stock_quote": 1}, "q3": {"getWeatherByCity": 1, "stock_quote": 0}}
    out = expand_tools(docs, queries, qrels)
    assert out[0].metadata["x_queries"] == ["is it raining in Paris", "weather in Oslo tomorrow"]
    assert out[1].metadata["x_queries"] == ["price of AAPL"]  # relevance 0 is not a judgement for the tool
    assert out[0].metadata["x_pseudo"][0].startswith("get weather by city")
    assert out[0].metadata["x_pseudo"][1] == "Current weather for a city."
    assert "x_similar" not in out[0].metadata  # no encoder given
    assert docs[0].metadata.get("x_queries") is None  # the inputs are unchanged
    again = expand_tools(out, queries, {})
    assert "x_queries" not in again[0].metadata  # expanding again replaces the old expansion


class _BagEncoder:
    """A real (if tiny) encoder: bag-of-letters vectors, enough to rank queries by overlap."""

    @staticmethod
    def _vec(texts):
        import numpy as np

        out = np.zeros((len(texts), 26), dtype=np.float32)
        for i, t in enumerate(texts):
            for ch in t.lower():
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    encode_queries = encode_documents = _vec


def test_similar_queries_for_tools_the_log_misses():
    docs = [tool_document(WEATHER), tool_document(STOCKS)]
    queries = {"q1": "weather forecast city", "q2": "zzz"}
    out = expand_tools(docs, queries, {"q2": {"stock_quote": 1}}, encoder=_BagEncoder(), similar=1, similar_below=1)
    assert out[0].metadata["x_similar"] == ["weather forecast city"]
    assert "x_similar" not in out[1].metadata  # named by a training query: no borrowed ones
