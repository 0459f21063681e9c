"""HAMU Studio: the frame. Page config and navigation only; every page draws itself.

Run with ``streamlit run app.py``. Each page file also works alone (``AppTest`` runs them
one by one), so nothing here may be something a page relies on.
"""

import streamlit as st

st.set_page_config(page_title="HAMU Studio", layout="wide")
st.navigation([
    st.Page("pages/1_Setup.py", title="Setup", icon=":material/home:", default=True),
    st.Page("pages/2_Forget_set.py", title="Forget set", icon=":material/target:", url_path="forget-set"),
    st.Page("pages/3_Unlearn.py", title="Unlearn", icon=":material/cleaning_services:", url_path="unlearn"),
]).run()
