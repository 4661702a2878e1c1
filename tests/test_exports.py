"""The public surface: a sorted __all__ that names everything public and only that."""

from __future__ import annotations

import inspect

import fireworks_deploy


def test_all_is_sorted() -> None:
    """__all__ is sorted and has no duplicates."""
    names = list(fireworks_deploy.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_every_name_importable() -> None:
    """Every name in __all__ is importable from the package."""
    for name in fireworks_deploy.__all__:
        assert hasattr(fireworks_deploy, name), name


def test_every_public_name_exported() -> None:
    """Every public, non-module name in the namespace is in __all__."""
    public = {
        name
        for name, value in vars(fireworks_deploy).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public <= set(fireworks_deploy.__all__), public - set(fireworks_deploy.__all__)


def test_exported_members_belong_to_the_package() -> None:
    """Exported classes come from fireworks_deploy (not re-exported third-party types)."""
    for name in fireworks_deploy.__all__:
        value = getattr(fireworks_deploy, name)
        if inspect.isclass(value):
            assert value.__module__.startswith("fireworks_deploy"), name


def test_version() -> None:
    """__version__ is a non-empty string."""
    assert isinstance(fireworks_deploy.__version__, str)
    assert fireworks_deploy.__version__


def test_error_tree() -> None:
    """Errors subclass the builtins callers already catch."""
    fd = fireworks_deploy
    assert issubclass(fd.InvalidConfigError, ValueError)
    assert issubclass(fd.WaitTimeoutError, TimeoutError)
    for cls in (fd.ReadyTimeoutError, fd.HotloadTimeoutError, fd.DeletionTimeoutError):
        assert issubclass(cls, fd.WaitTimeoutError)
    for cls in (
        fd.NotFoundError,
        fd.RateLimitError,
        fd.AuthenticationError,
        fd.InternalServerError,
    ):
        assert issubclass(cls, fd.APIStatusError)
    assert issubclass(fd.DeploymentNotFoundError, fd.DeploymentFailedError)
    assert issubclass(fd.ServerUnreachableError, fd.APIConnectionError)
    assert issubclass(fd.NotFireworksAPIError, fd.ResponseValidationError)
    assert issubclass(fd.NotFireworksAPIError, ValueError)
    assert issubclass(fd.InsecureTransportWarning, UserWarning)
    for name in fd.__all__:
        value = getattr(fd, name)
        if inspect.isclass(value) and issubclass(value, Exception):
            assert issubclass(value, Warning) or issubclass(value, fd.FireworksError), name
