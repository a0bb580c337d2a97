"""Files and folders: local paths and bucket URIs, atomic writes, frames, stage locks, a run's layout."""
