"""Entry point: `streamlit run app.py` (which loads the configuration first). The dashboard
is navigation.py and pages/; this adds the one HTTP route its Train cards ask for their
progress (dashboard/progress.py)."""

import streamlit as st

from dashboard import progress

app = st.App("navigation.py", routes=progress.routes())
