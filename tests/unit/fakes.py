"""A stand-in for AnsibleModule in unit tests: records run_command calls, answers canned results."""


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
