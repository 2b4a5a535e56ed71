"""Sweeps (Hydra multirun) that finish, compare and resume.

- ``job.py``: runs one job of a sweep; a failure is recorded in the job's ``job.json`` instead of
  ending the sweep, and on ``--resume`` a job that completed before is skipped.
- ``record.py``: ``job.json``, the file that says what happened to a job.
- ``resume.py``: the ``--resume`` flag: finds the earlier sweep run with the same command.
- ``callback.py``: before a grid sweep, every job checked; after it, a summary and the exit
  status (0 all finished, 1 some failed, 2 a job that cannot run, found before any ran).
- ``report.py`` (with ``results.py``, ``tables.py``, ``curves.py``): what ``scripts/report.py``
  reads from a sweep's run directories and writes: tables, CSV, Markdown, PNG curves.
"""
