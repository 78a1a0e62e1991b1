"""The HTML report reads the newer checks in words (the bias check once fell through to a raw
JSON dump, and representation lost its headline)."""

from __future__ import annotations

from plugins.audit.engine.bias import BiasResult, CategoryResult, Gap, GroupFigure, WordGap
from plugins.audit.engine.report import render_html
from plugins.audit.engine.stats import wilson


def _bias() -> dict:
    cat = CategoryResult(
        category="gender", groups=("alpha", "beta"),
        regard=[GroupFigure("alpha", -4.48, -5.0, -4.0, 7), GroupFigure("beta", 4.62, 4.1, 5.1, 7)],
        regard_gap=Gap("beta", "alpha", 9.10, 8.04, 10.16),
        sentiment=[GroupFigure("alpha", -0.78, -0.85, -0.7, 30, wilson(27, 30)),
                   GroupFigure("beta", 0.80, 0.72, 0.86, 30, wilson(1, 30))],
        sentiment_gap=Gap("beta", "alpha", 1.58, 1.4, 1.7, p_value=0.0005),
        words=[WordGap(" nasty", "The {group} was", "alpha", "beta", 110.0)])
    return BiasResult("bias_en.json", 7, 30, [cat]).to_json()


def test_bias_and_representation_sections_are_words_and_tables() -> None:
    rep = {"headline": "Class light is never generated (0 of 200 samples vs 50.0% of training "
                       "examples)", "generated": 200, "training": 36,
           "classes": [{"class": "dark", "generated": wilson(200, 200).to_json(),
                        "training": wilson(18, 36).to_json()},
                       {"class": "light", "generated": wilson(0, 200).to_json(),
                        "training": wilson(18, 36).to_json()}],
           "chi_square": 200.0, "p_value": 1e-40, "method": "5 nearest training examples"}
    html = render_html("My model", [
        {"audit": "bias", "created": 0, "result": _bias()},
        {"audit": "representation", "created": 0, "result": rep}])
    assert "<pre>" not in html
    assert "Bias towards groups" in html and "Representation in generated samples" in html
    assert "good words" in html and "nasty" in html and "110.0x" in html
    assert "-4.48 (-5.00 to -4.00), n=7" in html and "90.0% (n=30)" in html
    assert "Class light is never generated" in html
