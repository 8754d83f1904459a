"""``qc-station certificate``: issue a signed batch certificate (PDF + JSON), or verify one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
examples:
  qc-station certificate 12 --out certs/                      # batch id 12, 100% inspection basis
  qc-station certificate LOT-2026-118 --out certs/ --data ./qc-data
  qc-station certificate 12 --out certs/ --mode iso2859 --aql-major 1.5 --aql-minor 4.0
  qc-station certificate verify certs/QC-20261128-1A2B3C4D5E.pdf        # uses the .json beside it
  qc-station certificate verify cert.pdf --json cert.json --data ./qc-data   # also check the station key

BATCH is a batch id or a lot id (the newest batch of that lot). The signing key is
<data>/keys/station-ed25519.pem (created on first use). verify exits 0 if the certificate
is valid, 1 if not (with every reason), 2 on bad usage.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "certificate",
        help="issue a signed QC certificate (PDF + JSON) for a batch, or verify one",
        description="Issue the signed quality-control certificate of a batch from the station's store "
        "(counts, dimensional statistics, Cpk, acceptance decision, traceability, reject thumbnails; "
        "Ed25519 signature; QR code to the verify page), or verify a certificate file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("batch", metavar="BATCH", help="batch id or lot id; or the word 'verify' followed by FILE")
    p.add_argument("file", nargs="?", metavar="FILE", help="(verify) the certificate .json or .pdf")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--data", type=Path, help="station data folder (default ./qc-data)")
    where.add_argument("--config",
                       help="station.toml (its data_dir, calibration and [certificates] defaults)")
    p.add_argument("--out", type=Path, help="folder for <certificate id>.pdf and .json (required to issue)")
    p.add_argument("--mode", choices=["100%", "iso2859"],
                   help="acceptance basis (default 100%% or the config's)")
    p.add_argument("--level", choices=["I", "II", "III"], default="II", help="ISO 2859-1 general level")
    p.add_argument("--aql-critical", type=float, help="AQL for critical defects (default 0)")
    p.add_argument("--aql-major", type=float, help="AQL for major defects (default 2.5)")
    p.add_argument("--aql-minor", type=float, help="AQL for minor defects (default 4.0)")
    p.add_argument("--verify-url",
                   help="base URL of the station for the QR code, e.g. http://qc-station.local:8000 "
                   "(default: the config's certificates.public_url, else http://127.0.0.1:8000)")
    p.add_argument("--json", dest="json_file", type=Path,
                   help="(verify) the signed JSON of a PDF, if not beside it")
    p.set_defaults(func=_run)


def _config(args):
    if args.config:
        from qc_station.config import load_config

        return load_config(args.config)
    from qc_station.config import parse_config

    return parse_config({"data_dir": str(args.data or Path("qc-data"))})


def _run(args) -> int:
    if args.batch == "verify":
        return _verify(args)
    if args.file:
        print("qc-station certificate: error: unexpected argument "
              f"{args.file!r} (to verify a file: qc-station certificate verify FILE)", file=sys.stderr)
        return 2
    if args.out is None:
        print("qc-station certificate: error: --out DIR is required to issue a certificate", file=sys.stderr)
        return 2
    return _issue(args)


def _issue(args) -> int:
    from qc_station.certificates.content import CertificateSettings
    from qc_station.certificates.service import issue_for_batch
    from qc_station.errors import StorageError
    from qc_station.spec import load_spec
    from qc_station.store import DB_NAME, Store
    from qc_station.store.certificate_rows import find_batch

    cfg = _config(args)
    if not (Path(cfg.data_dir) / DB_NAME).is_file():
        raise StorageError(f"no station store in {cfg.data_dir} (give --data DIR or --config station.toml)")
    conf = cfg.certificates
    base = (args.verify_url or conf.public_url or f"http://127.0.0.1:{cfg.api.port}").rstrip("/")
    settings = CertificateSettings(
        mode=args.mode or conf.mode, level=args.level,
        aql_critical=conf.aql_critical if args.aql_critical is None else args.aql_critical,
        aql_major=conf.aql_major if args.aql_major is None else args.aql_major,
        aql_minor=conf.aql_minor if args.aql_minor is None else args.aql_minor,
        verify_url=f"{base}/verify",
    )
    with Store(cfg.data_dir) as store:
        batch = find_batch(store, args.batch)
        got = issue_for_batch(store, batch.id, load_spec(batch.spec_name), settings, data_dir=cfg.data_dir,
                              out_dir=args.out, calibrations=_calibrations(cfg), reuse=False, actor="cli")
    import json

    payload = json.loads(got.certificate.json_bytes)["payload"]
    counts, acc = payload["counts"], payload["acceptance"]
    print(f"certificate {got.certificate.certificate_id} for lot {batch.lot_id} (batch {batch.id}): "
          f"{counts['inspected']} inspected, {counts['passed']} passed, {counts['failed']} failed, "
          f"{counts['unusable']} unusable; lot {acc['decision']} ({acc['mode']})")
    print(f"  {got.pdf_path}\n  {got.json_path}")
    if batch.is_open:
        print("  note: the batch is still open", file=sys.stderr)
    return 0


def _calibrations(cfg) -> list:
    try:
        if cfg.calibration == "sim":
            from qc_station.calibration import bundled_sim_calibration

            return [bundled_sim_calibration()]
        from qc_station.calibration import load_calibration

        return [load_calibration(cfg.calibration)]
    except Exception:  # only the calibration date is lost
        return []


def _verify(args) -> int:
    from qc_station.certificates import verify_file
    from qc_station.certificates.service import station_keys

    if not args.file:
        print("qc-station certificate verify: error: give the certificate FILE (.json or .pdf)",
              file=sys.stderr)
        return 2
    trusted = None
    if args.data or args.config:
        cfg = _config(args)
        trusted = [k.public_key for k in station_keys(cfg.data_dir)]
    v = verify_file(args.file, json_path=args.json_file, trusted_public_keys=trusted)
    if v.valid:
        p = v.payload
        print(f"VALID: certificate {p['certificate_id']} for lot {p['batch']['lot_id']}, "
              f"issued {p['issued_at']}, "
              f"lot {p['acceptance']['decision']}; signed by key {v.key_id}"
              + (" (a key of this station)" if v.trusted_key else
                 " (not checked against a station: pass --data or --config, or compare with /api/keys)"))
        return 0
    print(f"INVALID: {args.file}", file=sys.stderr)
    for reason in v.reasons:
        print(f"  - {reason}", file=sys.stderr)
    return 1
