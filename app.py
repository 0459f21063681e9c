"""HAMU Studio: the frame. Page config and navigation only; every page draws itself.

Run with ``streamlit run app.py``. Each page file also works alone (``AppTest`` runs them
one by one), so nothing here may be something a page relies on.
"""

import streamlit as st

from hamu_ui.boundary import page_boundary

st.set_page_config(page_title="HAMU Studio", layout="wide")
page = st.navigation([
    st.Page("pages/1_Setup.py", title="Setup", icon=":material/home:", default=True),
    st.Page("pages/2_Forget_set.py", title="Forget set", icon=":material/target:", url_path="forget-set"),
    st.Page("pages/3_Unlearn.py", title="Unlearn", icon=":material/cleaning_services:", url_path="unlearn"),
    st.Page("pages/4_Compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("pages/5_Inspect.py", title="Inspect", icon=":material/search_insights:", url_path="inspect"),
    st.Page("pages/7_Requests.py", title="Requests", icon=":material/playlist_remove:", url_path="requests"),
    st.Page("pages/6_Report.py", title="Report", icon=":material/summarize:", url_path="report"),
])
with page_boundary():  # a safety net under every page, which also guards its own body
    page.run()
