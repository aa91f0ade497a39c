"""The domain: one service per resource kind, with its lifecycle; knows nothing of HTTP."""
