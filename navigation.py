"""The dashboard's pages, declared once (app.py serves this through `st.App`); each lives in pages/."""

import streamlit as st

from training.system import priority

# Below the training it watches, however the server was started (training/system/priority.py).
priority.lower_once()
st.set_page_config(page_title="CPU vs GPU training", page_icon=":material/speed:", layout="wide")

pages = [
    st.Page("pages/train.py", title="Train", icon=":material/play_arrow:", default=True),
    st.Page("pages/compare.py", title="Compare", icon=":material/monitoring:"),
    st.Page("pages/scaling.py", title="Scaling", icon=":material/stacked_line_chart:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/folder_open:"),
]
st.navigation(pages).run()
