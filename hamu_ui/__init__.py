"""HAMU Studio's user interface layer: the only package besides the pages that imports Streamlit.

- ``session``: the typed per-tab ``StudioSession`` and the live run it owns;
- ``cache``: every process-wide cache (datasets, trained models, embeddings, hardness);
- ``figures``: plotly builders, data in and figures out, no Streamlit;
- ``widgets``: page pieces shared by every page (loading, status line, settings, samples);
- ``forget_set`` and ``stepper``: the pieces of the Forget set and Unlearn pages;
- ``runs``: the live run in the run store and in the page URL (reopened after a reload);
- ``report_view``: the Report page's verdict, numbers, downloads and run list.
"""
