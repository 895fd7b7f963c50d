# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test controls of the shared state: ``python3 -m kubesim.ctl reset | advance SECONDS | dump | tokens``."""

import json
import sys

from . import state


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["reset"]:
        print(state.reset())
    elif args[:1] == ["advance"]:
        with state.locked() as cluster:
            cluster.advance(int(args[1]))
    elif args[:1] == ["dump"]:
        print(json.dumps(state.read(), indent=1, sort_keys=True))
    elif args[:1] == ["tokens"]:
        with state.locked() as cluster:
            tokens = [{"id": state.secret_value(s, "token-id"), "expiration": state.secret_value(s, "expiration"),
                       "description": state.secret_value(s, "description"),
                       "seconds_left": (state.parse_rfc3339(state.secret_value(s, "expiration")) - state.now(cluster.data))
                       .total_seconds() if state.secret_value(s, "expiration") else None}
                      for s in cluster.list("secrets", "kube-system") if s.get("type") == state.BOOTSTRAP_TOKEN_TYPE]
        print(json.dumps(tokens))
    else:
        print("usage: python3 -m kubesim.ctl reset | advance SECONDS | dump | tokens", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
