"""Suggested interventions from the spec's catalogue (``retain.interventions``)."""

from __future__ import annotations

import pytest

from retain.data.spec import SpecError, load_spec, load_spec_file
from retain.explanations import Reason
from retain.interventions import suggest

SPEC = load_spec("dropout")
CATALOGUE = ["financial aid referral", "payment plan", "tutoring", "advising meeting"]


def _reason(feature: str, contribution: float) -> Reason:
    direction = "raises risk" if contribution > 0 else "lowers risk"
    return Reason(feature, feature, "x", contribution, direction, f"{feature} ({direction})")


def test_reasons_that_raise_risk_suggest_what_addresses_them_strongest_first() -> None:
    found = suggest(
        SPEC,
        [
            _reason("tuition_fees_up_to_date", 0.9),
            _reason("units_1st_sem_approved", 0.4),
            _reason("debtor", -0.3),
        ],
        CATALOGUE,
    )
    assert [s.type for s in found] == ["financial aid referral", "payment plan", "tutoring"]
    assert found[0].features == ("tuition_fees_up_to_date",)  # debtor lowers risk here: not addressed
    assert found[0].reasons == ("tuition_fees_up_to_date (raises risk)",)
    assert found[2].weight == pytest.approx(0.4)


def test_only_the_institutions_catalogue_is_offered() -> None:
    found = suggest(SPEC, [_reason("tuition_fees_up_to_date", 0.9)], ["payment plan"])
    assert [s.type for s in found] == ["payment plan"]
    assert suggest(SPEC, [_reason("tuition_fees_up_to_date", 0.9)], []) == []


def test_a_spec_naming_an_unknown_feature_is_refused(tmp_path: object) -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "configs/datasets/exam_scores.yaml").read_text()
    broken = Path(str(tmp_path)) / "exam_scores.yaml"
    broken.write_text(text.replace("addresses: [test_preparation]", "addresses: [test_prep]"))
    with pytest.raises(SpecError, match="test_prep"):
        load_spec_file(broken)


def test_an_intervention_may_not_address_a_protected_attribute(tmp_path: object) -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "configs/datasets/exam_scores.yaml").read_text()
    broken = Path(str(tmp_path)) / "exam_scores.yaml"
    broken.write_text(text.replace("addresses: [test_preparation]", "addresses: [test_preparation, gender]"))
    with pytest.raises(SpecError, match="protected"):
        load_spec_file(broken)
