"""HAMU Studio — placeholder home page until the Studio issue lands."""

import streamlit as st

st.set_page_config(page_title="HAMU Studio", layout="wide")
st.title("HAMU Studio")
st.write("See and steer machine unlearning. The Studio pages arrive with the app issue.")
