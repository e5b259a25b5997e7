"""Entry point: `streamlit run app.py`. Declares the pages; each lives in pages/."""

import streamlit as st

st.set_page_config(page_title="CPU vs GPU training", page_icon="⚡", layout="wide")

pages = [
    st.Page("pages/train.py", title="Train", icon="▶️", default=True),
    st.Page("pages/compare.py", title="Compare", icon="📈"),
    st.Page("pages/runs.py", title="Runs", icon="🗂️"),
]
st.navigation(pages).run()
