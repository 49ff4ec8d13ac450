"""The one error type raised for bad dataset files."""


class DatasetFileError(ValueError):
    """A dataset file is missing, corrupt, of the wrong format or of the wrong checksum.

    The message is one line and starts with the offending path, so a user can act on it.
    """

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = str(problem).replace("\n", " ")
        super().__init__(f"{self.path}: {self.problem}")
