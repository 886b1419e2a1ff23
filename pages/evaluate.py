"""Evaluate page (not built yet)."""

import streamlit as st

st.title("Evaluate")
st.info("This step is not built yet. It arrives with its issue; the pages before it work.")
