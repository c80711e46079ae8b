"""Every dashboard page under Streamlit's AppTest, against a real API on a loopback port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

TASK = "Binary dropout risk (Dropout against Enrolled or Graduate)."
APP = Path(__file__).resolve().parents[3] / "src" / "retain" / "dashboard" / "app.py"


def _signed_in(key: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert "Sign in" in at.info[0].value
    at.sidebar.text_input[0].input(key)
    at.sidebar.button[0].click()
    at.run()
    assert not at.exception, at.exception
    return at


def _page(at: AppTest, name: str) -> AppTest:
    at.sidebar.radio(key="retain_page").set_value(name)
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_a_bad_key_is_refused_with_the_services_message(api_env: Any) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.sidebar.text_input[0].input("not-a-key")
    at.sidebar.button[0].click()
    at.run()
    assert "Sign-in failed" in at.error[0].value and "unknown" in at.error[0].value


def test_caseload_ranks_students_with_readable_labels_and_a_worklist(api_env: Any) -> None:
    at = _signed_in(api_env.admin_key)
    assert at.selectbox(key="caseload_task").value == TASK  # opens on the task that has students
    frame = at.dataframe[0].value
    assert len(frame) == 40  # the default capacity
    assert all(name.startswith("Student ") for name in frame["Student"])  # names from the roster
    assert list(frame["Risk"]) == sorted(frame["Risk"], reverse=True)
    assert set(frame["Band"]) <= {"Low", "Medium", "High"}
    assert all(p and not p.isdigit() for p in frame["Programme"])  # programme names, never codes
    assert "at enrolment, before any grades" in set(frame["Warning made"])
    at.number_input(key="caseload_capacity").set_value(10)
    at.run()
    assert len(at.dataframe[0].value) == 10
    at.multiselect(key="caseload_bands").set_value(["High"])
    at.run()
    assert set(at.dataframe[0].value["Band"]) == {"High"}


def test_student_page_shows_reasons_suggestions_and_logs_an_intervention(api_env: Any) -> None:
    at = _signed_in(api_env.admin_key)
    at.button(key="caseload_open_button").click()
    at.run()
    assert at.session_state["retain_page"] == "Student"
    sid = at.session_state["student_id"]
    assert any(s.value == "Why" for s in at.subheader)
    reasons = [m.value for m in at.markdown if "risk)" in m.value]
    assert reasons and not any(
        r.split(":")[1].strip().strip("*").isdigit() and "units" not in r for r in reasons
    )
    at.selectbox(key="intervention_type").set_value("tutoring")
    at.text_area(key="intervention_note").input("weekly maths tutoring")
    next(b for b in at.button if b.label == "Log intervention").click()
    at.run()
    assert any("Logged: tutoring" in s.value for s in at.success)
    import httpx

    history = httpx.get(
        f"{api_env.url}/v1/dropout/students/{sid}", headers={"X-API-Key": api_env.admin_key}
    ).json()
    assert history["interventions"][-1]["type"] == "tutoring"
    assert history["interventions"][-1]["note"] == "weekly maths tutoring"


def test_what_if_recomputes_the_risk(api_env: Any) -> None:
    at = _signed_in(api_env.admin_key)
    at = _page(at, "Student")
    at.text_input(key="student_lookup").input(api_env.student_ids[0])
    at.run()
    at.toggle(key="whatif_tuition_fees_up_to_date").set_value(False)
    at.button(key="whatif_go").click()
    at.run()
    assert not at.error
    assert any(m.label == "Risk with these changes" for m in at.metric)


def test_upload_scores_a_file_and_names_bad_columns(api_env: Any, tmp_path: Path) -> None:
    at = _signed_in(api_env.admin_key)
    at = _page(at, "Upload")
    assert at.title[0].value == "Score a file"


def test_fairness_and_operations_pages_render(api_env: Any) -> None:
    at = _signed_in(api_env.admin_key)
    at = _page(at, "Fairness")
    assert at.title[0].value == "Fairness"
    at = _page(at, "Models and operations")
    assert {"Ready", "Uptime", "Database"} <= {m.label for m in at.metric}
    assert any(
        "Last scoring:" in m.value and "predictions in the last 24 hours" in m.value for m in at.markdown
    )
    frame = at.dataframe[0].value
    assert "dropout.dropout.enrolment" in set(frame["Model"]) and "champion" in set(frame["Role"])


def test_advisors_do_not_see_the_admin_page(api_env: Any) -> None:
    at = _signed_in(api_env.advisor_key)
    assert "Models and operations" not in at.sidebar.radio(key="retain_page").options
    assert at.info or at.dataframe  # their caseload (programme 9500) or the empty-caseload note


def test_insights_compare_groups_in_words_without_codes(api_env: Any) -> None:
    at = _page(_signed_in(api_env.admin_key), "Insights")
    assert any("differences that hold after correction" in s.value for s in at.subheader)
    table = at.dataframe[0].value
    assert {"Test", "Adjusted p", "In words"} <= set(table.columns) and len(table) > 0
    assert table["Adjusted p"].dropna().between(0, 1).all()
    assert not any(str(g).isdigit() for g in table["Compared by"])  # readable column names


def test_intervention_impact_page_shows_the_caution_and_the_counts(api_env: Any) -> None:
    at = _page(_signed_in(api_env.admin_key), "Intervention impact")
    assert any("not given interventions at random" in c.value for c in at.caption)
    assert {m.label for m in at.metric} >= {"Helped", "Not helped"}
