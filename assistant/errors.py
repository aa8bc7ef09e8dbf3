"""User-facing errors.

Every error LoRA Mixer raises on purpose derives from :class:`LoraMixerError`. Its message is
written for the person who typed the input: it names what was passed and what is allowed
("weight 'abc' in <lora:catgirl_v1:abc> is not a number; use a value from -2 to 2"). The UI,
the API and the CLI show ``str(err)`` as is, so never put a traceback or a repr in it.

Every error pickles with its fields (``__reduce__``), so one raised in a Ray replica reaches the
front process as the same type with the same message.
"""

from __future__ import annotations

from collections.abc import Sequence


class LoraMixerError(Exception):
    """Base class of the errors a user can cause and read."""

    #: HTTP status the API answers with for this error.
    http_status: int = 400


class PromptError(LoraMixerError, ValueError):
    """The prompt text breaks a rule or a limit (bad tag, weight out of range, too long)."""

    http_status = 422


class PresetError(LoraMixerError, ValueError):
    """A YAML preset file (catalog, recipe, rules) is invalid; the message names file and key."""


class LibraryError(LoraMixerError):
    """A LoRA file or folder cannot be used (refused format, corrupt header, outside the roots)."""


class LoraNotFound(LibraryError, LookupError):
    """A LoRA name matches no file in the library.

    ``suggestions`` holds did-you-mean names, best first (may be empty).
    """

    http_status = 404

    def __init__(self, name: str, suggestions: Sequence[str] = (), *, message: str | None = None) -> None:
        self.name = name
        self.suggestions = tuple(suggestions)
        if message is None:
            message = f"LoRA not found: '{name}'."
            if self.suggestions:
                message += " Did you mean: " + ", ".join(f"'{s}'" for s in self.suggestions) + "?"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), (self.name, self.suggestions), {"message": str(self)}))


class AmbiguousLoraName(LibraryError, LookupError):
    """A name or alias matches more than one LoRA; ``candidates`` lists the real names."""

    http_status = 409

    def __init__(self, name: str, candidates: Sequence[str]) -> None:
        self.name = name
        self.candidates = tuple(candidates)
        super().__init__(
            f"LoRA name '{name}' is ambiguous: it matches "
            + ", ".join(f"'{c}'" for c in self.candidates)
            + ". Use the file name to pick one."
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), (self.name, self.candidates), {}))


class GenerationError(LoraMixerError):
    """Generation could not run or produced an unusable image (NaN, bad settings, failed LoRA load)."""

    http_status = 422


class LimitError(PromptError, GenerationError):
    """A value outside one of :mod:`assistant.limits`' bounds (steps, CFG, size, batch, seed, clip
    skip, a LoRA weight …): the one error type for a limit, wherever it is checked (render settings,
    the API, the CLI, the engine's last check). It is a PromptError and a GenerationError, so code
    written against either keeps catching it."""


class LoraLoadError(GenerationError):
    """A LoRA file could not be loaded into the pipeline; the pipeline was left as before."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"LoRA '{name}' could not be loaded: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), (self.name, self.reason), {}))


class Cancelled(LoraMixerError):
    """The user cancelled a running generation.

    ``step``/``total`` say where it stopped (sampler steps over the whole action) when known.
    """

    http_status = 499

    def __init__(
        self, message: str = "cancelled", *, step: int | None = None, total: int | None = None
    ) -> None:
        self.step = step
        self.total = total
        super().__init__(message)


class ModelSwitchDisabled(LoraMixerError):
    """The server does not let users switch the base model (a shared Space, by default)."""

    http_status = 403


class ImageError(LoraMixerError, ValueError):
    """An image a user sent cannot be used (not an image, truncated, too large, no pixels).

    The message names the image ("init image 'photo.heic'") and what would work instead.
    """

    http_status = 422


class ImageTooLarge(ImageError):
    """An image (or a request body carrying one) is over a limit of :mod:`assistant.limits`."""

    http_status = 413


class DatasetError(LoraMixerError, ValueError):
    """A training dataset cannot be used; ``problems`` lists every problem found, one sentence each.

    Raised before any model is loaded, so a bad folder costs nothing.
    """

    http_status = 422

    def __init__(self, root: str, problems: Sequence[str]) -> None:
        self.root = root
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"Dataset '{root}' cannot be used for training:\n{lines}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), (self.root, self.problems), {}))


class TrainingError(LoraMixerError):
    """A LoRA training run cannot start or failed (bad settings, base model, optimizer, output)."""

    http_status = 422


def _rebuild(
    cls: type[LoraMixerError], args: tuple[object, ...], kwargs: dict[str, object]
) -> LoraMixerError:
    """Unpickle an error whose constructor takes more than a message (see ``__reduce__``)."""
    return cls(*args, **kwargs)
