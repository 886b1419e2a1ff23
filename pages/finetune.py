"""Finetune page (not built yet)."""

import streamlit as st

st.title("Finetune")
st.info("This step is not built yet. It arrives with its issue; the pages before it work.")
