"""The data-generation service on Ray (DESIGN.md, "Ray service shape").

``driver`` runs a job: inputs -> lifting tasks (their own environment) ->
simulator actors (one per simulator, one store shard each) -> the store;
``actors`` holds the actor and the lifting task; ``config`` every option of a
run (``GenerateConfig``); ``cli`` the ``hop-data generate`` / ``python -m
hop_data.service`` command, built from it, and ``run`` one run as the command
does it; ``supervisor`` watches the driver of an embedded Ray from outside it
(``processes``: /proc helpers); ``errors`` the exit statuses. See
docs/service.md and docs/reliability.md.
Nothing is imported here, so that ``hop-data --help`` stays instant.
"""
