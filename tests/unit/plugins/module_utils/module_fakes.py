# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions a fake AnsibleModule raises instead of failing or exiting, shared by the module_utils tests."""


class Failed(Exception):
    """fail_json was called: ``msg`` and the other keyword arguments."""

    def __init__(self, msg, **kwargs):
        super(Failed, self).__init__(msg)
        self.msg = msg
        self.kwargs = kwargs


class Exited(Exception):
    """exit_json was called with ``result``."""

    def __init__(self, result):
        super(Exited, self).__init__("exit")
        self.result = result
