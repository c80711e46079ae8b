"""Streamlit entry point: ``retain dashboard`` (or ``streamlit run`` on this file).

Sign in with an API key; every page then reads and writes through the API with it.
"""

from __future__ import annotations

import streamlit as st

from retain.dashboard.client import ApiClient, ApiError
from retain.dashboard.context import Context
from retain.dashboard.sections import ADMIN_PAGES, PAGES
from retain.data.spec import list_specs, load_spec
from retain.settings import get_settings


def _sign_in(url: str) -> None:
    with st.sidebar.form("sign-in"):
        key = st.text_input("API key", type="password", help="Ask your administrator for a key.")
        if st.form_submit_button("Sign in") and key:
            client = ApiClient(url, key)
            try:
                st.session_state["retain_role"] = client.role()
            except ApiError as exc:
                st.error(f"Sign-in failed: {exc.message}")
                return
            st.session_state["retain_api"] = client
            st.rerun()


def main() -> None:
    st.set_page_config(page_title="Retain", page_icon=":mortar_board:", layout="wide")
    settings = get_settings()
    url = st.session_state.setdefault("retain_api_url", settings.dashboard_api_url)
    st.sidebar.title("Retain")
    st.sidebar.caption("Student early warning")
    api: ApiClient | None = st.session_state.get("retain_api")
    if api is None:
        _sign_in(url)
        st.title("Retain")
        st.info("Sign in with your API key (in the sidebar) to see your students.")
        return
    role = str(st.session_state.get("retain_role", "advisor"))
    specs = {load_spec(name).title: name for name in list_specs()}
    default = list(specs.values()).index("dropout") if "dropout" in specs.values() else 0
    title = st.sidebar.selectbox("Students of", list(specs), index=default, key="retain_dataset")
    names = [*PAGES, *(ADMIN_PAGES if role == "admin" else {})]
    goto = st.session_state.pop("retain_goto", None)  # a page asked to open another
    if goto in names:
        st.session_state["retain_page"] = goto
    page = st.sidebar.radio("Page", names, key="retain_page")
    st.sidebar.caption(f"Signed in as {role}")
    if st.sidebar.button("Sign out"):
        for key in ("retain_api", "retain_role"):
            st.session_state.pop(key, None)
        st.rerun()
    context = Context(api, role, load_spec(specs[title]), settings)
    render = {**PAGES, **ADMIN_PAGES}[page]
    try:
        render(context)
    except ApiError as exc:
        st.error(f"The service answered {exc.status}: {exc.message}")


main()
