"""Enable fireworks_deploy's pytest plugin: local control plane fixtures for these tests."""

pytest_plugins = ["fireworks_deploy.testing"]
