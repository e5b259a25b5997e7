"""The dashboard's own code: figure builders, tables and session state.

Pages in pages/ stay thin: they read widgets, call the run manager, and
render what these modules build. Nothing here imports TensorFlow. The pure
builders (series, figures, tables, grouping, scaling, report) import no Streamlit,
so `python -m training report` uses them too.
"""
