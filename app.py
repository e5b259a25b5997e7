"""Entry point: `streamlit run app.py`. The dashboard is navigation.py and pages/; this adds
the one HTTP route its Train cards fetch their progress from (dashboard/progress.py)."""

import streamlit as st

from dashboard import progress

app = st.App("navigation.py", routes=progress.routes())
