"""Testing helpers with Celery's names: :func:`~.worker.start_worker` runs a worker in a
thread of the test process, :func:`~.app.TestApp` makes an app on in-memory transports,
and :mod:`celeriac.contrib.pytest` turns both into pytest fixtures."""
