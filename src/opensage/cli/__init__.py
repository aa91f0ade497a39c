"""The `opensage` command line."""
