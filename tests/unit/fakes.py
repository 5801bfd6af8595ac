"""Stand-ins for AnsibleModule in unit tests: record run_command calls, answer canned results."""


class FakeModule:
    """Records run_command calls and answers with canned (rc, out, err)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def run_command(self, args, **kwargs):
        self.calls.append(dict(args=args, **kwargs))
        return self.answers.pop(0)

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/" + name

    def fail_json(self, **kwargs):
        raise AssertionError(kwargs)


class Exit(Exception):
    """exit_json or fail_json was called (AnsibleModule's raise SystemExit)."""


class ModuleRun:
    """A module's run: params, check mode, and the result exit_json or fail_json leaves in
    `result` (failed=True for fail_json) before raising Exit; subclasses answer run_command."""

    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self._diff = False
        self.calls = []
        self.result = None

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/" + name

    def exit_json(self, **kwargs):
        self.result = kwargs
        raise Exit()

    def fail_json(self, **kwargs):
        self.result = dict(kwargs, failed=True)
        raise Exit()
