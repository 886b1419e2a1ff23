"""ReBase Studio's library: turn a task description into a trained task expert (Ge et al. 2024).

One module per pipeline stage; `import rebase_core` is instant (heavy libraries load inside the
functions that need them) and never imports streamlit.
"""

__version__ = "0.1.0"
