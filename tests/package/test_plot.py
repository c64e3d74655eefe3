"""The monitor's plots: round y ticks, time ticks on whole hours, days or weeks, each
with a gridline, axes labelled."""

from __future__ import annotations

from datetime import datetime, timedelta

from pandafacility import plot


def test_y_ticks_are_round_and_reach_the_peak():
    assert plot.y_ticks(0) == [0, 1]
    assert plot.y_ticks(3) == [0, 1, 2, 3]
    assert plot.y_ticks(7) == [0, 2, 4, 6, 8]
    assert plot.y_ticks(1234) == [0, 500, 1000, 1500]


def test_x_ticks_fall_on_whole_hours_days_or_weeks():
    start = datetime(2026, 12, 1, 13, 0)
    day, fmt = plot.x_ticks(start, start + timedelta(hours=23))
    assert fmt == "%m-%d %H:%M" and day[0] == datetime(2026, 12, 1, 15, 0)
    assert all(t.hour % 3 == 0 for t in day) and len(day) <= plot.MAX_X_TICKS
    week, fmt = plot.x_ticks(start, start + timedelta(days=7))
    assert fmt == "%m-%d" and week[0] == datetime(2026, 12, 2)
    assert all(t.hour == 0 for t in week) and len(week) == 7
    month, _ = plot.x_ticks(start, start + timedelta(days=30))
    assert [t.weekday() for t in month] == [0] * len(month) and len(month) == 4


def test_the_plot_has_gridlines_ticks_and_labels():
    times = [datetime(2026, 12, 1) + timedelta(hours=h) for h in range(24)]
    svg = plot.line_plot({"running": list(range(24))}, times, "T <1>", "jobs per hour")
    assert svg.count('class="ytick"') == 6  # 0, 5, ... 25
    assert svg.count('class="xtick"') == 8 and ">12-01 03:00<" in svg
    assert "time (UTC)" in svg and "jobs per hour" in svg and "T &lt;1&gt;" in svg
    assert svg.count("<polyline") == 1
