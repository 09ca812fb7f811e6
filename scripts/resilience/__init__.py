"""The resilience report (`scripts/report-resilience`): the local stack under fuzzing, hostile
input, faults, load, a soak and key-timing measurements, written up as one Markdown report
with PNG charts. Each part is a module here; `scripts/resilience_report.py` runs them in order.
"""
