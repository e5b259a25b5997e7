"""Where runs start and how they stop. `local.py`: a detached worker on this machine."""
