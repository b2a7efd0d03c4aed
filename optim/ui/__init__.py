"""The Streamlit app's pages (one module per page, each with a ``render()``), the pure plotly
figure builders (:mod:`optim.ui.figures`) and the cached loaders (:mod:`optim.ui.cache`).

Importing any of these modules is cheap: heavy libraries (ax, torch, jax) load inside the
cached loaders, on first use.
"""
