"""Pure domain logic of kubatch: no kopf, no I/O, plain data in and out.

Modules: ``states`` (job state machine, status reasons, attempt outcomes), ``retry``
(retryStrategy / evaluateOnExit), ``params`` (``Ref::`` substitution), ``arrays`` (compact index
sets, array parent status), ``deps`` (dependency gates, cycle detection), ``podspec`` (definition
+ overrides -> Pod manifest, resource needs), ``revisions`` (JobDefinition revision helpers),
``cron`` (cron schedules: parsing, run times) and ``schedules`` (JobSchedule decisions).
"""
