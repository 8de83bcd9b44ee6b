"""Report errors: each message is one line naming the input and the fix."""


class ReportError(Exception):
    pass


class ReportInputError(ReportError):
    """A results folder, prices file or option that cannot be used."""


class MixedRunsError(ReportError):
    """Runs whose Ruby, ruby-bench commit or settings differ (use --allow-mixed)."""
