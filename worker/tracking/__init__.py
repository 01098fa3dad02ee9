"""The job tracker: one watch per cluster follows every eksops Job to its end.

* :mod:`~worker.tracking.lease` — one tracker per cluster in the whole fleet, chosen
  through Redis, taken over within seconds when its holder dies;
* :mod:`~worker.tracking.watching` — list, then watch from the list's resource
  version, resume after an interruption, re-list after ``410 Gone``;
* :mod:`~worker.tracking.summaries` — what a Job or Pod object says for its record;
* :mod:`~worker.tracking.tracker` — one cluster's tracker: Jobs and their Pods into
  job records (``worker.jobrecords``), failed containers' log tails captured;
* :mod:`~worker.tracking.supervisor` — in every worker process: which clusters to
  track, and the trackers this process holds.
"""
