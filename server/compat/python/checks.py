"""Runs a script's checks in order, reporting each as TAP-like lines: shared by compat.py and tls.py."""

import traceback


def run(namespace):
    """Runs every function of `namespace` (a module's globals) named `check_*`, in order.

    Every failure is reported with its traceback, then counted. Returns the exit status.
    """
    checks = [v for k, v in namespace.items() if k.startswith("check_")]
    passed = failed = 0
    for check in checks:
        try:
            check()
        except Exception:  # noqa: BLE001 - every failure is reported, then counted
            failed += 1
            print(f"not ok - {check.__name__}")
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok - {check.__name__}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
