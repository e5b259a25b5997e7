"""Disk is the truth: run folders, their logs, process identity and the run queue.

Nothing in this package imports Streamlit or a deep-learning framework.
"""
