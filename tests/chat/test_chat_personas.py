"""Personas: tone lines, sampler validation, JSON import/export with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugins.chat.engine.personas import (
    DEFAULT_PERSONA,
    TONE_LINES,
    Persona,
    Sampler,
    export_personas,
    import_personas,
    parse_personas,
    with_sampler,
)
from studio.errors import UserError


def test_tone_adds_its_line_to_the_system_prompt() -> None:
    p = Persona("Guide", "You guide visitors.", tone="formal")
    assert p.full_system_prompt() == "You guide visitors.\n\n" + TONE_LINES["formal"]
    assert Persona("Plain", "Be brief.").full_system_prompt() == "Be brief."
    assert Persona("Only tone", tone="friendly").full_system_prompt() == TONE_LINES["friendly"]
    assert len({TONE_LINES[t] for t in ("formal", "casual", "friendly")}) == 3


def test_export_then_import_round_trips(tmp_path: Path) -> None:
    ps = [DEFAULT_PERSONA,
          Persona("Pirate", "Talk like a pirate.", "Ahoy!", "casual",
                  Sampler(temperature=1.1, top_k=0, top_p=0.9, min_p=0.0,
                          repetition_penalty=1.2, seed=42, stop=("</s>", "User:"),
                          max_new_tokens=64))]
    path = export_personas(ps, tmp_path / "personas.json")
    data = json.loads(path.read_text())
    assert data["format"] == "studio-chat-personas" and data["version"] == 1
    assert import_personas(path) == ps


def test_a_single_persona_object_or_list_is_accepted() -> None:
    assert parse_personas({"name": "A"}) == [Persona("A")]
    assert [p.name for p in parse_personas([{"name": "A"}, {"name": "B"}])] == ["A", "B"]


@pytest.mark.parametrize(("data", "message"), [
    ({"name": "A", "sampler": {"temperature": "hot"}}, "temperature must be a number"),
    ({"name": "A", "sampler": {"temperature": 9}}, "temperature must be"),
    ({"name": "A", "sampler": {"top_p": 0}}, "top p must be above 0"),
    ({"name": "A", "sampler": {"top_k": 1.5}}, "top k must be a whole number"),
    ({"name": "A", "sampler": {"seed": -1}}, "seed must be between"),
    ({"name": "A", "sampler": {"stop": "###"}}, "'stop' must be a list"),
    ({"name": "A", "sampler": {"stop": [""]}}, "Stop strings"),
    ({"name": "A", "sampler": {"temprature": 1}}, "unknown sampler setting.*temprature"),
    ({"name": "A", "tone": "grumpy"}, "unknown tone 'grumpy'"),
    ({"name": "A", "colour": "red"}, "unknown field.*colour"),
    ({"name": ""}, "needs a name"),
    ({"system_prompt": "x"}, "has no name"),
    ({"name": "A", "system_prompt": 3}, "system prompt must be text"),
    ([{"name": "A"}, {"name": "A"}], "two personas named A"),
    ({"format": "other"}, "not a personas file"),
    ({"format": "studio-chat-personas", "version": 99, "personas": []}, "newer version"),
    ("text", "holds no persona"),
    ([], "holds no persona"),
])
def test_bad_persona_data_names_the_problem(data, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_personas(data, "p.json")


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(UserError, match=r"bad.json is not valid JSON \(line 1"):
        import_personas(bad)
    with pytest.raises(UserError, match=r"No persona file named missing\.json"):
        import_personas(tmp_path / "missing.json")
    nested = tmp_path / "n.json"
    nested.write_text(json.dumps([{"name": "ok"}, {"name": "x", "sampler": {"min_p": 2}}]))
    with pytest.raises(UserError, match=r"n\.json, persona 2.*min p"):
        import_personas(nested)


def test_with_sampler_validates() -> None:
    p = with_sampler(DEFAULT_PERSONA, temperature=0.2, seed=3)
    assert p.sampler.temperature == 0.2 and p.sampler.seed == 3
    with pytest.raises(UserError, match="repetition penalty"):
        with_sampler(p, repetition_penalty=0)
