"""The local executor: stage tasks on the task queue, the stage processes that run them, and the runner."""
