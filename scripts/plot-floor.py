#!/usr/bin/env python3
"""Draws scripts/bench-floor.sh's rounds as an SVG bar chart: each request's
median req/s with its rounds as dots, and the issue's targets as marks.
No plotting library: the chart is a few rectangles, written by hand.

    python3 scripts/plot-floor.py ROUNDS_FILE OUT.svg [TITLE]

ROUNDS_FILE has one "label req/s" line per round (floor, get, search).
"""
import statistics
import sys
from html import escape

rounds, out = sys.argv[1], sys.argv[2]
title = sys.argv[3] if len(sys.argv) > 3 else "phivault records reads against the floor"
TARGETS = {"get": 30000, "search": 20000}
LABELS = {
    "floor": "floor: GET /v1/auth/token/lookup-self",
    "get": "get one record by id",
    "search": "search by blind index",
}
rows = {}
for line in open(rounds):
    parts = line.split()
    if len(parts) == 2 and parts[0] in LABELS:
        rows.setdefault(parts[0], []).append(float(parts[1]))
order = [k for k in ("floor", "get", "search") if k in rows]
if not order:
    sys.exit("no rounds in " + rounds)
top = max(max(max(v) for v in rows.values()), max(TARGETS.values())) * 1.1
W, left, right, bar, gap, head = 860, 270, 190, 34, 26, 88
H = head + len(order) * (bar + gap) + 50
x = lambda v: left + (W - left - right) * v / top
svg = [
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="13">',
    f'<rect width="{W}" height="{H}" fill="white"/>',
    f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{escape(title)}</text>',
    f'<text x="{W / 2}" y="44" text-anchor="middle" fill="#555">requests/s: bars are medians, dots the rounds, red marks the issue\'s targets</text>',
    f'<text x="{W / 2}" y="62" text-anchor="middle" fill="#555">the floor: mTLS, certificate authentication and a durable audit event, with no record work</text>',
]
step = 10000 if top > 20000 else 5000
for t in range(0, int(top) + 1, step):
    svg.append(f'<line x1="{x(t):.1f}" y1="{head - 6}" x2="{x(t):.1f}" y2="{H - 40}" stroke="#ddd"/>')
    svg.append(f'<text x="{x(t):.1f}" y="{H - 24}" text-anchor="middle" fill="#555">{t // 1000}k</text>')
floor = statistics.median(rows["floor"]) if "floor" in rows else None
for i, k in enumerate(order):
    y = head + i * (bar + gap)
    m = statistics.median(rows[k])
    colour = "#8a8a8a" if k == "floor" else "#3b6ea8"
    svg.append(f'<text x="{left - 8}" y="{y + bar / 2 + 4}" text-anchor="end">{escape(LABELS[k])}</text>')
    svg.append(f'<rect x="{left}" y="{y}" width="{x(m) - left:.1f}" height="{bar}" fill="{colour}"/>')
    share = f" ({m / floor:.2f} of the floor)" if floor and k != "floor" else ""
    end = max([m, *rows[k], TARGETS.get(k, 0)])
    svg.append(f'<text x="{x(end) + 8:.1f}" y="{y + bar / 2 + 4}">{m:,.0f}{share}</text>')
    for v in rows[k]:
        svg.append(f'<circle cx="{x(v):.1f}" cy="{y + bar / 2}" r="3" fill="black" fill-opacity="0.6"/>')
    if k in TARGETS:
        tx = x(TARGETS[k])
        svg.append(f'<line x1="{tx:.1f}" y1="{y - 4}" x2="{tx:.1f}" y2="{y + bar + 4}" stroke="#c0392b" stroke-width="3"/>')
        svg.append(f'<text x="{tx:.1f}" y="{y - 7}" text-anchor="middle" fill="#c0392b" font-size="11">target {TARGETS[k] // 1000}k</text>')
svg.append("</svg>")
open(out, "w").write("\n".join(svg) + "\n")
