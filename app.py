"""archopt's Streamlit app: ``streamlit run app.py``.

Navigation only; each page is a ``render()`` function in :mod:`optim.ui` (kept out of a folder
named ``pages/`` so Streamlit's legacy auto-discovery stays off). Nothing expensive runs here.
"""

import streamlit as st

from optim.ui import campaigns, export, model, next_run, pareto, scaling_law, throughput
from optim.ui.common import campaign_picker

st.set_page_config(page_title="archopt", page_icon=":material/architecture:", layout="wide")

page = st.navigation(
    [
        st.Page(
            campaigns.render,
            title="Campaigns",
            url_path="campaigns",
            default=True,
            icon=":material/science:",
        ),
        st.Page(
            next_run.render, title="Next run", url_path="next-run", icon=":material/psychology:"
        ),
        st.Page(pareto.render, title="Pareto", url_path="pareto", icon=":material/scatter_plot:"),
        st.Page(model.render, title="Model", url_path="model", icon=":material/fact_check:"),
        st.Page(
            scaling_law.render,
            title="Scaling law",
            url_path="scaling-law",
            icon=":material/show_chart:",
        ),
        st.Page(
            throughput.render, title="Throughput", url_path="throughput", icon=":material/speed:"
        ),
        st.Page(export.render, title="Export", url_path="export", icon=":material/download:"),
    ]
)
campaign_picker()  # drawn on every page, so the choice survives page switches
page.run()
