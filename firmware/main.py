# DeltaSense node: run the firmware (ds/app.py). On a crash, print why and
# reset after 10 s, so a node on a pole never stays dead (the watchdog would
# reset it too, but only once started).
import sys
import time

try:
    from ds import app

    app.main()
except KeyboardInterrupt:
    print("ds: stopped from the console")
except Exception as exc:  # noqa: BLE001 - anything: report, then reset
    sys.print_exception(exc)  # type: ignore[attr-defined]
    print("ds: crashed; resetting in 10 s (Ctrl-C for the REPL)")
    time.sleep(10)
    import machine

    machine.reset()
