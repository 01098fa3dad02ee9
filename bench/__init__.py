"""eksops benchmark harness: ``python -m bench`` (``make bench``, ``make bench QUICK=1``).

Starts its own Valkey (append-only file on), kubesim (a subprocess, so it does not
share the harness's GIL) and real ``celery -A worker worker`` processes in a temporary
directory on free ports, then measures, in one run on one machine, each figure next
to the baseline it must be compared with: worker throughput against the Kubernetes
client called directly and against a no-op Celery task, bulk accept against raw
pipelined Redis writes, a burst drained under the fleet-wide limiter, and the costs
that must stay flat (memory, token presigns, status polls). Nothing here asserts a
timing: the figures are printed, and written to ``bench/results/``.
"""
