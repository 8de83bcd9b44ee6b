"""The task runner: claims tasks from the orchestrator and runs ruby-bench for them."""
