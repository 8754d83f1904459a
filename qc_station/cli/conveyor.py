"""``qc-station conveyor``: the conveyor controller (firmware/) - simulate the loop, or talk to it."""

from __future__ import annotations

import argparse

SIM_EXAMPLES = """\
examples:
  qc-station conveyor sim                          30 masks, random verdicts, clean wire
  qc-station conveyor sim --masks 60 --noise 0.05  drop/dup/corrupt/garbage 5 % of lines each way
  qc-station conveyor sim --unplug-at 10 --unplug-for 1.5
                                                   pull the USB cable for longer than the watchdog
  qc-station conveyor sim --verdicts pipeline --masks 6 --time-scale 1
                                                   the real inspection pipeline on simulator frames
"""

STATUS_EXAMPLES = """\
examples:
  qc-station conveyor status --port /dev/serial/by-id/usb-MicroPython_Board_in_FS_mode_e6613852-if00
  qc-station conveyor status --port /dev/ttyACM0 --clear     clear a latched e-stop (button released)
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "conveyor",
        help="conveyor controller: simulate the full loop, or query a real one",
        description="The conveyor controller (Raspberry Pi Pico, MicroPython, firmware/) times the belt, "
        "the photo-eye and the reject flap; the station answers each trigger with PASS/FAIL over USB "
        "serial (protocol: firmware/protocol.md).",
    )
    csub = p.add_subparsers(dest="conveyor_command", metavar="ACTION")
    sim = csub.add_parser(
        "sim",
        help="run the firmware against a simulated belt and the station driver; print the counts",
        description="Runs the real firmware sources (firmware/*.py) with a fake machine module and a "
        "simulated belt (one mask per second), behind a real pseudo-terminal, with the station's "
        "serial driver on the other end. Checks that every FAIL is rejected, no on-time PASS is, "
        "and late verdicts are rejected fail-safe. Exit code 1 if any rule was broken.",
        epilog=SIM_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("--masks", type=int, default=30, help="masks on the belt (default 30)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--time-scale", type=float, default=5.0, help="simulated seconds per real second (5)")
    sim.add_argument("--defective", type=float, default=0.3, help="share of defective masks (0.3)")
    sim.add_argument("--late", type=float, default=0.1, help="share of verdicts held past the reject point")
    sim.add_argument("--noise", type=float, default=0.0, help="per-line probability of each wire fault")
    sim.add_argument(
        "--unplug-at", type=float, default=None, metavar="S", help="pull the USB cable at sim second S"
    )
    sim.add_argument("--unplug-for", type=float, default=0.5, metavar="S", help="for S real seconds (0.5)")
    sim.add_argument(
        "--verdicts",
        choices=("auto", "random", "pipeline"),
        default="random",
        help="random: from the simulator's truth; pipeline: the real inspection on rendered frames",
    )
    sim.set_defaults(func=_sim)
    st = csub.add_parser(
        "status",
        help="connect to a controller and print its version, status and counts",
        epilog=STATUS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    st.add_argument("--port", required=True, help="serial device of the Pico (USB CDC)")
    st.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the controller")
    st.add_argument("--clear", action="store_true", help="send CLEAR (unlatch the e-stop) first")
    st.set_defaults(func=_status)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _sim(args) -> int:
    from qc_station.hardware.sim.host import LineFaults
    from qc_station.hardware.sim.loop import run_loop

    n = args.noise
    faults = LineFaults(p_drop=n, p_dup=n, p_corrupt=n, p_garbage=n)
    report = run_loop(
        args.masks,
        seed=args.seed,
        time_scale=args.time_scale,
        p_defective=args.defective,
        p_late=args.late,
        faults=faults,
        verdicts=args.verdicts,
        unplug_at_s=args.unplug_at,
        unplug_for_s=args.unplug_for,
        timeout_s=max(60.0, 3.0 * args.masks / args.time_scale + 30.0),
    )
    print(report.summary())
    return 1 if report.problems() else 0


def _status(args) -> int:
    from qc_station.errors import QCError
    from qc_station.hardware.link import ConveyorLink

    with ConveyorLink(args.port) as link:
        if not link.wait_connected(args.timeout):
            raise QCError(f"no answer from a conveyor controller on {args.port} within {args.timeout:g} s")
        info = link.info
        assert info is not None
        print(
            f"controller: firmware {info.firmware_version}, protocol v{info.protocol_version}, "
            f"boot {info.boot_id}"
        )
        if args.clear:
            link.clear()
        status = link.request_status(args.timeout)
        if status is not None:
            print(
                f"belt: {'RUN' if status.running else 'STOP'} at {status.speed_pct} %, "
                f"e-stop {'LATCHED' if status.estop_latched else 'clear'}, fault {status.fault}, "
                f"encoder {status.belt_position}, masks in flight {status.in_flight}"
            )
        counts = link.request_counts(args.timeout)
        if counts is not None:
            print("counts: " + ", ".join(f"{k}={v}" for k, v in vars(counts).items()))
        if link.stats.refused:
            print("the controller refused CLEAR: is the e-stop button still pressed?")
    return 0
