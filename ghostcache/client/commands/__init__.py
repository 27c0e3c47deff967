"""The client's subcommands, one module per area; each `run_*` takes the Context and
returns an exit code."""
