"""The project's exception types: one sentence naming the offending thing and what would be right."""


class MellmError(Exception):
    """Base of every error a user should see as one clear line (no traceback)."""


class PluginError(MellmError):
    """A plugin is unknown, misconfigured, duplicated or failed to load."""


class ConfigError(MellmError):
    """A recipe has one or more problems; all of them are listed in the message."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class InputError(MellmError):
    """An input item (image, sample, annotation) is missing, unreadable or inconsistent."""


class NoFaceError(InputError):
    """The landmarker found no face in the image."""


def require_package(module: str, what: str, install: str) -> None:
    """Raise an ``InputError`` naming the install command when the optional package giving ``module`` is absent
    (checked where the feature is used, so a recipe that asks for it still runs every other command)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise InputError(f"{what} needs its package: pip install '{install}'")
