"""The educator dashboard (Streamlit). It talks to the API with the user's key, so roles,
scoping and the audit trail apply to it as to any other client."""
