"""Local stack for development and demos: embedded Valkey, kubesim, worker, Flower.

Started by ``make run``; see :mod:`devstack.__main__`.
"""
