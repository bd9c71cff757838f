"""Where the pipeline runs: ZenML stacks and their declarations, Azure ML and Azurite, the dashboard, reliability."""
