"""One module per stage; each takes local paths and parameters and returns a StageResult."""
