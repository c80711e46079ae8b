"""Group comparisons: the test chooser, the tests, effect sizes against hand computations, Holm."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from retain.insights.stats import (
    CHI_SQUARE,
    FISHER,
    KRUSKAL,
    WELCH_ANOVA,
    WELCH_T,
    ComparisonError,
    adjust_p_values,
    choose_categorical_test,
    choose_numeric_test,
    cohens_d,
    compare_categorical,
    compare_numeric,
    correct,
    cramers_v,
    epsilon_squared,
    eta_squared,
    format_p,
    hedges_g,
    newcombe_interval,
    omega_squared,
    pool_small_groups,
    welch_anova,
    welch_t,
    wilson_interval,
)

RNG_SEED = 20240611


def _normal(seed: int, sizes: list[int], means: list[float], sd: float = 10.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(m, sd, n) for n, m in zip(sizes, means, strict=True)]


def _long(arrays: list[np.ndarray], labels: list[str]) -> tuple[pd.Series, pd.Series]:
    values = pd.Series(np.concatenate(arrays))
    groups = pd.Series(np.repeat(labels, [a.size for a in arrays]), dtype=object)
    return values, groups


# ----------------------------------------------------------------------------- test choice


def test_two_groups_get_welch_t_whatever_their_shape() -> None:
    skewed = [np.random.default_rng(1).exponential(1.0, 12), np.random.default_rng(2).exponential(1.0, 15)]
    assert choose_numeric_test(skewed).test == WELCH_T
    assert choose_numeric_test(_normal(3, [200, 300], [0, 1])).test == WELCH_T


def test_large_symmetric_groups_get_welch_anova() -> None:
    choice = choose_numeric_test(_normal(4, [40, 50, 60], [0, 1, 2]))
    assert choice.test == WELCH_ANOVA
    assert "Welch" in choice.reason


def test_a_group_under_30_gets_kruskal_wallis() -> None:
    choice = choose_numeric_test(_normal(5, [40, 50, 29], [0, 1, 2]))
    assert choice.test == KRUSKAL
    assert "29" in choice.reason


def test_skewed_groups_get_kruskal_wallis_even_when_large() -> None:
    rng = np.random.default_rng(6)
    groups = [rng.exponential(1.0, 200) for _ in range(3)]
    choice = choose_numeric_test(groups)
    assert choice.test == KRUSKAL
    assert "skew" in choice.reason


def test_a_constant_group_gets_kruskal_wallis() -> None:
    groups = [*_normal(7, [40, 40], [0, 1]), np.full(40, 3.0)]
    assert choose_numeric_test(groups).test == KRUSKAL


def test_a_class_outcome_gets_chi_square_or_fisher_when_sparse() -> None:
    assert choose_categorical_test(np.array([[30, 70], [50, 50]])).test == CHI_SQUARE
    assert choose_categorical_test(np.array([[30, 70, 20], [50, 50, 40], [10, 20, 30]])).test == CHI_SQUARE
    assert choose_categorical_test(np.array([[2, 8], [9, 1]])).test == FISHER
    with pytest.raises(ComparisonError):
        choose_categorical_test(np.array([[3, 4]]))


# ----------------------------------------------------------------------------- tests and effect sizes

A = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
B = np.array([3.0, 4.0, 5.0, 6.0, 7.0])


def test_cohens_d_and_hedges_g_match_a_hand_computation() -> None:
    # means 3 and 5, both variances 2.5, pooled sd sqrt(2.5): d = -2 / 1.5811 = -1.2649
    assert cohens_d(A, B) == pytest.approx(-1.2649110640673518)
    # J = 1 - 3 / (4 * 10 - 9) = 28 / 31
    g = hedges_g(A, B)
    assert g.value == pytest.approx(-1.2649110640673518 * 28 / 31)
    se = math.sqrt(10 / 25 + g.value**2 / 20)
    assert g.ci_low == pytest.approx(g.value - 1.959963984540054 * se)
    assert g.ci_high == pytest.approx(g.value + 1.959963984540054 * se)
    assert g.magnitude == "large"
    assert hedges_g(B, A).value == pytest.approx(-g.value)


def test_welch_t_matches_scipy() -> None:
    a, b = _normal(8, [25, 60], [10, 14], sd=6)
    t, df, p = welch_t(a, b)
    ref = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue)
    assert df == pytest.approx(ref.df)


def test_welch_anova_of_two_groups_is_the_squared_welch_t() -> None:
    a, b = _normal(9, [30, 45], [0, 2], sd=3)
    f, df1, df2, p = welch_anova([a, b])
    t, df, p_t = welch_t(a, b)
    assert f == pytest.approx(t**2)
    assert (df1, df2) == (1.0, pytest.approx(df))
    assert p == pytest.approx(p_t)


@pytest.mark.skipif(
    "equal_var" not in inspect.signature(scipy_stats.f_oneway).parameters, reason="scipy without Welch ANOVA"
)
def test_welch_anova_matches_scipy() -> None:
    groups = _normal(10, [30, 40, 55, 35], [0, 1, 1.5, 3], sd=4)
    f, _, _, p = welch_anova(groups)
    ref = scipy_stats.f_oneway(*groups, equal_var=False)
    assert f == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue)


GROUPS = [np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]), np.array([7.0, 8.0, 9.0])]


def test_eta_and_omega_squared_match_a_hand_computation() -> None:
    # means 2, 5, 8, grand mean 5: SS_between = 3 * (9 + 0 + 9) = 54, SS_within = 3 * 2 = 6,
    # MS_within = 6 / (9 - 3) = 1
    assert eta_squared(GROUPS).value == pytest.approx(54 / 60)
    assert omega_squared(GROUPS).value == pytest.approx((54 - 2 * 1) / (60 + 1))
    assert omega_squared(GROUPS).magnitude == "large"
    null = [np.array([1.0, 2.0, 3.0])] * 3
    assert omega_squared(null).value < 0 < eta_squared(GROUPS).value
    assert omega_squared(null).magnitude == "negligible"


def test_epsilon_squared_is_h_over_n_minus_one() -> None:
    h = float(scipy_stats.kruskal(*GROUPS).statistic)
    assert epsilon_squared(h, 9).value == pytest.approx(h / 8)
    assert epsilon_squared(4.0, 9).value == pytest.approx(0.5)


def test_cramers_v_matches_a_hand_computation() -> None:
    # expected 12, 18, 28, 42: chi2 = 4/12 + 4/18 + 4/28 + 4/42; V = |phi| = 200 / sqrt(30*70*40*60)
    table = np.array([[10, 20], [30, 40]])
    v = cramers_v(table)
    assert v.value == pytest.approx(math.sqrt((4 / 12 + 4 / 18 + 4 / 28 + 4 / 42) / 100))
    assert v.value == pytest.approx(200 / math.sqrt(30 * 70 * 40 * 60))
    assert v.magnitude == "negligible"


def test_wilson_and_newcombe_intervals_match_published_values() -> None:
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson_interval(0, 10)[0] == 0.0
    # Newcombe (1998), Table II: 56/70 - 48/80, method 10: 0.0524 to 0.3339
    low, high = newcombe_interval(56, 70, 48, 80)
    assert (low, high) == (pytest.approx(0.0524, abs=1e-4), pytest.approx(0.3339, abs=1e-4))


# ----------------------------------------------------------------------------- small groups


def test_small_groups_are_pooled_or_left_out() -> None:
    groups = pd.Series(["a"] * 20 + ["b"] * 15 + ["c"] * 4 + ["d"] * 3 + ["e"] * 5 + [None] * 2, dtype=object)
    pooled = pool_small_groups(groups, 10, order=["b", "a", "c", "d", "e"])
    assert pooled.order == ("b", "a", "Other (3 groups under 10 students)")
    assert pooled.pooled == ("c", "d", "e")
    assert pooled.labels.isna().sum() == 2
    assert (pooled.labels == "Other (3 groups under 10 students)").sum() == 12

    few = pd.Series(["a"] * 20 + ["b"] * 15 + ["c"] * 4 + ["d"] * 3, dtype=object)
    left_out = pool_small_groups(few, 10)
    assert left_out.order == ("a", "b")
    assert left_out.excluded == ("c", "d")
    assert left_out.labels.isna().sum() == 7


def test_a_comparison_needs_two_groups_of_the_minimum_size() -> None:
    values, groups = _long(_normal(11, [40, 5], [0, 1]), ["big", "tiny"])
    with pytest.raises(ComparisonError, match="fewer than two groups"):
        compare_numeric(values, groups, outcome="y", group_by="g")


# ----------------------------------------------------------------------------- comparisons


def test_compare_numeric_two_groups_reports_welch_g_and_the_difference() -> None:
    values, groups = _long(_normal(12, [150, 120], [64, 70]), ["none", "completed"])
    c = compare_numeric(
        values,
        groups,
        outcome="math",
        group_by="prep",
        outcome_label="Math score",
        group_label="Test preparation",
    )
    assert c.test == WELCH_T
    assert [g.label for g in c.groups] == ["none", "completed"]  # most frequent first without an order
    a, b = c.groups
    assert c.difference == pytest.approx((a.mean or 0) - (b.mean or 0))
    assert c.difference_ci is not None and c.difference_ci[0] < c.difference < c.difference_ci[1]
    assert c.effect.name == "Hedges' g"
    assert c.n == 270
    assert c.p_value < 0.001


def test_compare_numeric_k_groups_follows_the_rule() -> None:
    values, groups = _long(_normal(13, [60, 70, 80], [0, 0.5, 1]), ["x", "y", "z"])
    c = compare_numeric(values, groups, outcome="y", group_by="g", order=["z", "y", "x"])
    assert c.test == WELCH_ANOVA and c.effect.name == "ω²" and c.statistic_name == "F"
    assert [g.label for g in c.groups] == ["z", "y", "x"]
    small, small_groups = _long(_normal(14, [12, 70, 80], [0, 0.5, 1]), ["x", "y", "z"])
    k = compare_numeric(small, small_groups, outcome="y", group_by="g")
    assert k.test == KRUSKAL and k.effect.name == "ε²"
    h = scipy_stats.kruskal(*[small[small_groups == label] for label in ["x", "y", "z"]]).statistic
    assert k.statistic == pytest.approx(h)
    assert k.effect.value == pytest.approx(h / (k.n - 1))


def test_compare_categorical_reports_rates_and_v() -> None:
    rng = np.random.default_rng(RNG_SEED)
    groups = pd.Series(["yes"] * 300 + ["no"] * 300, dtype=object)
    left = np.concatenate([rng.random(300) < 0.12, rng.random(300) < 0.38])
    values = pd.Series(np.where(left, "Dropout", "Graduate"), dtype=object)
    c = compare_categorical(
        values,
        groups,
        outcome="target",
        group_by="scholarship",
        focus="Dropout",
        binary=True,
        order=["no", "yes"],
    )
    assert c.test == CHI_SQUARE and c.effect.name == "Cramér's V"
    no, yes = c.groups
    assert (no.label, yes.label) == ("no", "yes")
    assert no.rate == pytest.approx(left[300:].mean())
    assert c.difference == pytest.approx((no.rate or 0) - (yes.rate or 0))
    assert no.rate_ci_low is not None and no.rate_ci_low < (no.rate or 0) < (no.rate_ci_high or 0)
    assert set(no.shares) == {"Dropout", "Not Dropout"}
    table = np.array([[left[300:].sum(), 300 - left[300:].sum()], [left[:300].sum(), 300 - left[:300].sum()]])
    assert c.statistic == pytest.approx(scipy_stats.chi2_contingency(table, correction=False)[0])
    assert c.p_value < 0.001


def test_compare_categorical_uses_fisher_on_a_sparse_two_by_two() -> None:
    groups = pd.Series(["a"] * 12 + ["b"] * 12, dtype=object)
    values = pd.Series(["fail"] * 1 + ["pass"] * 11 + ["fail"] * 7 + ["pass"] * 5, dtype=object)
    c = compare_categorical(values, groups, outcome="o", group_by="g", focus="fail", binary=True)
    assert c.test == FISHER
    assert c.p_value == pytest.approx(scipy_stats.fisher_exact([[1, 11], [7, 5]])[1])


# ----------------------------------------------------------------------------- correction


def test_holm_matches_a_hand_computation_and_is_monotone() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4 * 0.005, 3 * 0.01, 2 * 0.03, max(0.06, 1 * 0.04)
    assert adjust_p_values(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust_p_values([0.5, 0.6], "holm") == pytest.approx([1.0, 1.0])
    rng = np.random.default_rng(RNG_SEED)
    raw = rng.random(40) ** 3
    adjusted = adjust_p_values(raw, "holm")
    order = np.argsort(raw)
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert np.all(adjusted >= raw) and np.all(adjusted <= 1)


def test_benjamini_hochberg_matches_a_hand_computation_and_scipy() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # 4 p / rank: 0.02, 0.02, 0.04, 0.04 (running minimum from the largest)
    assert adjust_p_values(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    raw = np.random.default_rng(RNG_SEED).random(25) ** 2
    assert adjust_p_values(raw, "bh") == pytest.approx(scipy_stats.false_discovery_control(raw))


def test_missing_p_values_are_not_counted() -> None:
    out = adjust_p_values([0.01, math.nan, 0.02], "holm")
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_a_planted_difference_survives_correction_and_null_ones_are_not_flagged() -> None:
    comparisons = []
    planted_values, planted_groups = _long(_normal(RNG_SEED, [120, 120], [60, 66]), ["on", "off"])
    comparisons.append(compare_numeric(planted_values, planted_groups, outcome="planted", group_by="g"))
    for i in range(12):
        values, groups = _long(_normal(RNG_SEED + 1 + i, [100, 100, 100], [60, 60, 60]), ["a", "b", "c"])
        comparisons.append(compare_numeric(values, groups, outcome=f"null{i}", group_by="g"))
    corrected = correct(comparisons, "holm", alpha=0.05)
    assert corrected[0].significant is True
    assert not any(c.significant for c in corrected[1:])
    assert [c.p_adjusted for c in corrected] == pytest.approx(
        list(adjust_p_values([c.p_value for c in comparisons]))
    )
    assert all(c.sentence for c in corrected)


# ----------------------------------------------------------------------------- words


def test_sentences_say_direction_test_effect_and_adjusted_p() -> None:
    values, groups = _long(_normal(15, [300, 500], [69.7, 64.0], sd=14), ["completed", "none"])
    c = compare_numeric(
        values,
        groups,
        outcome="math_score",
        group_by="test_preparation",
        outcome_label="Math score",
        group_label="Test preparation course",
        order=["none", "completed"],
    )
    (done,) = correct([c])
    assert done.sentence.startswith("Math score was ")
    assert "points higher for test preparation course “completed” than for “none”" in done.sentence
    assert "Welch t-test, g = " in done.sentence and "adjusted p < 0.001" in done.sentence
    assert "g = -" not in done.sentence

    null_values, null_groups = _long(_normal(16, [50, 50], [10, 10]), ["a", "b"])
    (null,) = correct(
        [compare_numeric(null_values, null_groups, outcome="y", group_by="g", group_label="Gender")]
    )
    assert null.sentence.startswith("No clear difference in y by gender")


def test_format_p() -> None:
    assert format_p(0.0004) == "< 0.001"
    assert format_p(0.01234) == "= 0.012"
    assert format_p(0.41) == "= 0.41"
    assert format_p(1.0) == "= 1"
