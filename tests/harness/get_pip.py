"""Stand-in for get-pip.py, which ansible-test downloads from a host the test labs cannot reach.

ansible-test runs this file as ``python get_pip_<version>.py --disable-pip-version-check pip==<version>``
inside a new virtual environment that has no pip. Like the real get-pip.py, it runs pip from a
pip wheel on sys.path to install pip into that environment; the wheel is downloaded from PyPI by
tests/harness/tier.py next to this file's cached copy (~/.ansible/test/cache).
"""

import glob
import os
import sys


def main():
    cache = os.path.dirname(os.path.abspath(__file__))
    wheels = sorted(glob.glob(os.path.join(cache, "pip-*-py3-none-any.whl")))
    if not wheels:
        sys.exit("no pip wheel in %s: run `make sanity`, which downloads it from PyPI" % cache)
    sys.path.insert(0, wheels[-1])
    from pip._internal.cli.main import main as pip_main  # noqa: PLC0415 - comes from the wheel

    # get-pip.py's own options: it installs setuptools and wheel unless told not to; this stand-in
    # never installs them, so the options are consumed here.
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    sys.exit(pip_main(["install", "--upgrade", "--force-reinstall", *args]))


if __name__ == "__main__":
    main()
