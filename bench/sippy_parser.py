"""Times sippy's parser on the bench INVITE; run with a Python that has sippy.

Prints one JSON object. Kept apart from our code: sippy is installed only in
the benchmark's own virtualenv, never as a project dependency.
"""

import json
import sys
import time

from sippy.SipRequest import SipRequest

sys.path.insert(0, sys.argv[1])
from messages import INVITE

TEXT = INVITE.decode()


def once() -> str:
    req = SipRequest(TEXT)
    req.getHFBody("via").getBranch()
    req.getHFBody("from").getTag()
    req.getHFBody("to").getTag()
    req.getHFBody("call-id")
    req.getHFBody("cseq").getCSeq()
    req.getHFBody("contact")
    req.getHFBody("max-forwards")
    return str(req)


def main() -> None:
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    once()
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(200):
            once()
        n += 200
    elapsed = time.perf_counter() - start
    print(json.dumps({"messages": n, "seconds": elapsed, "rate": n / elapsed}))


if __name__ == "__main__":
    main()
