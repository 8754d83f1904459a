"""Draw a certificate payload as an A4 inspection report (reportlab), with a QR code."""

from __future__ import annotations

import io
from pathlib import Path

import segno
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from qc_station.results import PLAIN_WORDS

_GREEN, _RED, _GREY = colors.HexColor("#1b7f3b"), colors.HexColor("#b3261e"), colors.HexColor("#5f6368")


def _fmt(v, unit: str = "") -> str:
    if v is None:
        return "-"
    return f"{v:.2f}{unit}" if isinstance(v, float) else f"{v}{unit}"


def _grid(rows: list[list], widths: list[float], header: bool = True) -> Table:
    t = Table(rows, colWidths=widths, hAlign="LEFT")
    style = [("FONT", (0, 0), (-1, -1), "Helvetica", 8.5),
             ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#c8c8c8")),
             ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
             ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    if header:
        style += [("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8.5),
                  ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee"))]
    t.setStyle(TableStyle(style))
    return t


def render_pdf(payload: dict, *, key_id: str, thumbnails: dict[str, str | Path] | None = None) -> bytes:
    """The PDF bytes of a certificate. ``thumbnails`` maps reject inspection ids to image files."""
    buf = io.BytesIO()
    cert_id = payload["certificate_id"]
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=16 * mm, rightMargin=16 * mm, topMargin=14 * mm,
                            bottomMargin=14 * mm, title=f"Mask QC certificate {cert_id}",
                            subject=cert_id, author="qc-station", creator="qc-station")
    ss = getSampleStyleSheet()
    small = ParagraphStyle("small", parent=ss["Normal"], fontSize=8, leading=10, textColor=_GREY)
    body = ParagraphStyle("body", parent=ss["Normal"], fontSize=9, leading=11.5)
    h2 = ParagraphStyle("h2", parent=ss["Heading2"], fontSize=11, spaceBefore=6, spaceAfter=3)
    b, p, c, acc = payload["batch"], payload["product"], payload["counts"], payload["acceptance"]
    story: list = []

    qr = segno.make(f"{payload['verify_url']}?id={cert_id}", error="m")
    qr_png = io.BytesIO()
    qr.save(qr_png, kind="png", scale=4, border=1)
    qr_png.seek(0)
    title = [Paragraph("<b>Mask quality-control certificate</b>", ss["Title"]),
             Paragraph(f"Certificate <b>{cert_id}</b> &middot; issued {payload['issued_at']}", body),
             Paragraph(f"Lot <b>{b['lot_id']}</b> &middot; workshop {b['workshop'] or '-'} &middot; "
                       f"station(s) {', '.join(b['station_ids']) or '-'}", body),
             Paragraph(f"Opened {b['opened_at']} &middot; closed {b['closed_at'] or 'still open'}", body)]
    head = Table([[title, Image(qr_png, 30 * mm, 30 * mm)]], colWidths=[148 * mm, 32 * mm])
    head.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [head, Spacer(1, 3 * mm)]

    decided = acc["decision"]
    colour = _GREEN if decided == "accepted" else _RED if decided == "rejected" else _GREY
    banner = Table([[Paragraph(f"<font color='white' size='16'><b>LOT {decided.upper()}</b></font>", body)]],
                   colWidths=[180 * mm], rowHeights=[11 * mm])
    banner.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colour),
                                ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    story += [banner, Spacer(1, 1.5 * mm), Paragraph(acc["basis"], body)]

    story.append(Paragraph("Product spec", h2))
    lim = p["limits"]
    story.append(_grid([
        ["spec", "version", "width mm", "height mm", "pleats", "loops/side", "stitch mm", "seam mm"],
        [p["spec_name"], p["spec_version"], f"{lim['width_mm'][0]}-{lim['width_mm'][1]}",
         f"{lim['height_mm'][0]}-{lim['height_mm'][1]}", lim["pleats"], lim["ear_loops_per_side"],
         f"{lim['stitch_length_mm'][0]}-{lim['stitch_length_mm'][1]}",
         f"{lim['seam_distance_mm'][0]}-{lim['seam_distance_mm'][1]}"],
    ], [38 * mm, 15 * mm, 22 * mm, 22 * mm, 15 * mm, 20 * mm, 24 * mm, 24 * mm]))

    story.append(Paragraph("Counts", h2))
    rate = "-" if c["pass_rate"] is None else f"{100 * c['pass_rate']:.1f} %"
    story.append(_grid([["frames", "masks inspected", "passed", "failed", "pass rate", "unusable frames"],
                        [c["frames"], c["inspected"], c["passed"], c["failed"], rate, c["unusable"]]],
                       [28 * mm, 32 * mm, 26 * mm, 26 * mm, 30 * mm, 38 * mm]))
    if c["failed_by_reason"]:
        story.append(Spacer(1, 2 * mm))
        rows = [["reject reason", "masks"]]
        rows += [[PLAIN_WORDS.get(k, k), v] for k, v in c["failed_by_reason"].items()]
        story.append(_grid(rows, [80 * mm, 25 * mm]))

    story.append(Paragraph("Dimensions (mm)", h2))
    rows = [["", "n", "mean", "sd", "min", "max", "LSL", "USL", "Cpk", "Ppk"]]
    for name in ("width", "height"):
        s = payload["dimensions"][name]
        rows.append([name, s.get("n"), _fmt(s.get("mean_mm")), _fmt(s.get("sd_mm")), _fmt(s.get("min_mm")),
                     _fmt(s.get("max_mm")), _fmt(s.get("lsl_mm")), _fmt(s.get("usl_mm")), _fmt(s.get("cpk")),
                     _fmt(s.get("ppk"))])
    story.append(_grid(rows, [18 * mm] + [18 * mm] * 9))
    story.append(Paragraph("Cpk: short-term capability (sigma from the moving range, as on the control "
                           "charts). Ppk: overall performance (standard deviation of the batch, drift "
                           "included).", small))

    iso = acc["iso2859"]
    story.append(Paragraph("ISO 2859-1 sampling plan (for comparison with manual sampling)", h2))
    if iso.get("applicable"):
        rows = [["class", "AQL", "code letter", "sample", "Ac", "Re", "found", "decision"]]
        for sev, q in iso["per_class"].items():
            letter = f"{q['code_letter']} (plan {q['plan_letter']})"
            rows.append([sev, q["aql"], letter, q["sample_size"], q["ac"], q["re"],
                         q["nonconforming_in_sample"], q["decision"]])
        story.append(_grid(rows, [22 * mm, 14 * mm, 30 * mm, 18 * mm, 12 * mm, 12 * mm, 16 * mm, 22 * mm]))
        story.append(Paragraph(f"Lot size {iso['lot_size']}, general level {iso['level']}, normal "
                               f"inspection, single sampling. Sampling decision: <b>{iso['decision']}</b>.",
                               small))
    else:
        story.append(Paragraph(f"Not applicable: {iso.get('why')}", small))

    if payload["rejects"]:
        story.append(Paragraph("Recent rejects", h2))
        cells = []
        for rj in payload["rejects"]:
            path = (thumbnails or {}).get(str(rj["inspection_id"]))
            img = ""
            if path and Path(path).exists():
                img = Image(str(path), 40 * mm, 24 * mm, kind="proportional")
            words = ", ".join(PLAIN_WORDS.get(x, x) for x in rj["reasons"])
            cells.append([img, Paragraph(f"#{rj['inspection_id']}<br/>{words}", small)])
        rows = [[*cells[i], *(cells[i + 1] if i + 1 < len(cells) else ["", ""])]
                for i in range(0, len(cells), 2)]
        t = Table(rows, colWidths=[42 * mm, 48 * mm, 42 * mm, 48 * mm], hAlign="LEFT")
        t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
        story.append(t)

    tr = payload["traceability"]
    story.append(Paragraph("Traceability", h2))
    cals = "; ".join(f"{x['id']} ({x['created_at'] or 'date unknown'})" for x in tr["calibrations"]) or "-"
    story.append(Paragraph(f"Spec id {p['spec_id']}<br/>Calibration(s): {cals}<br/>"
                           f"Model sha256: {', '.join(tr['model_sha256']) or 'none (geometry only)'}<br/>"
                           f"Software qc-station {tr['software_version']}", small))
    story.append(Spacer(1, 3 * mm))
    story.append(Paragraph(
        f"Signed with the station's Ed25519 key <b>{key_id}</b>. The signed JSON certificate "
        f"({cert_id}.json) carries this PDF's SHA-256. Verify: <i>qc-station certificate verify "
        f"{cert_id}.pdf</i> or scan the QR code.", small))
    doc.build(story)
    return buf.getvalue()
