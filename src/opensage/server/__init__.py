"""The edge: AWS wire protocols, validation against botocore's models, errors. No business logic."""
